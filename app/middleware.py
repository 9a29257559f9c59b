"""The API's middleware: request bodies read whole, within bounds, before any route sees them."""

import asyncio
from typing import Any

from fastapi.responses import JSONResponse

BODY_SCOPE_KEY = "spikeserve.body"  # where BodyGuard leaves a request's body


class BodyGuard:
    """Reads each request body whole before the application sees it, within four bounds:

    - its size: 413 by Content-Length before reading anything, or as soon as the bytes pass it;
    - its pace: 408 when no bytes arrive for ``idle_timeout_s``, or the whole body takes longer
      than ``timeout_s`` (stalled uploads no longer pin memory);
    - the bytes of all bodies this process holds at once (``budget_bytes``): 503 beyond it;
    - one buffer per body, never copied on the event loop: routes take it from the scope
      (``json_body``). Copies of a 47 MiB body took the loop 50-85 ms each.
    """

    def __init__(self, app: Any, max_bytes: int, budget_bytes: int, timeout_s: float, idle_timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget_bytes = budget_bytes
        self.timeout_s = timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.held = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _reply(scope, receive, send, 413, f"request body over the limit of {self.max_bytes} bytes")
        reserved = int(declared or 0)
        if self.held + reserved > self.budget_bytes:
            return await _reply(scope, receive, send, 503, "the server is receiving too many large requests; retry")
        self.held += reserved
        try:
            body = await self._read(scope, receive, send, reserved)
            if body is None:
                return
            self.held += len(body) - reserved
            reserved = len(body)
            scope[BODY_SCOPE_KEY] = body
            replayed = False

            async def replay() -> dict:  # for anything that reads the body the usual way
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            self.held -= reserved

    async def _read(self, scope: dict, receive: Any, send: Any, declared: int) -> bytearray | None:
        """The body, or None after answering with an error."""
        buffer = bytearray()  # grows in place (large blocks are remapped, not copied), as bytes arrive
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), min(self.idle_timeout_s, max(0.0, deadline - loop.time())))
            except TimeoutError:
                await _reply(scope, receive, send, 408, "the request body did not arrive in time")
                return None
            if message["type"] != "http.request":
                return None  # the client went away
            buffer += message.get("body", b"")
            if len(buffer) > self.max_bytes:
                await _reply(scope, receive, send, 413, f"request body over the limit of {self.max_bytes} bytes")
                return None
            if len(buffer) > declared and self.held + len(buffer) - declared > self.budget_bytes:
                await _reply(scope, receive, send, 503, "the server is receiving too many large requests; retry")
                return None
            if not message.get("more_body", False):
                return buffer


async def _reply(scope: dict, receive: Any, send: Any, code: int, detail: str) -> None:
    headers = {"Retry-After": "5"} if code == 503 else {"Connection": "close"}
    await JSONResponse({"detail": detail}, code, headers=headers)(scope, receive, send)
