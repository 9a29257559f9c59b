"""Serving the API with uvicorn, hardened against slow clients.

uvicorn times out idle keep-alive connections but not a client that never finishes its headers:
2,000 such connections all stayed open. ``HeaderTimeoutProtocol`` closes a connection whose
request headers have not all arrived within ``header_timeout_s`` of the connection (or of the
request's first byte on a kept-alive connection). Bodies are bounded by ``app.api.BodyGuard``;
``limit_concurrency`` answers 503 beyond ``max_connections`` open connections.
"""

import asyncio
import contextlib
import gc
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from worker.processes import raise_open_files_limit
from worker.settings import Settings


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": seconds})


def quiet_garbage_collector() -> None:
    """Fewer and shorter pauses of CPython's cyclic garbage collector, which stops the event loop.

    With 1,100 connections open, full collections of every object took 70-170 ms each, and every
    request waited for them (measured here). The objects made at start-up (modules, routes,
    schemas) are frozen out of collection, and the thresholds raised so that full collections,
    which scan every connection's objects, are rare; young garbage is still collected often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class _Server(uvicorn.Server):
    """uvicorn's server, calling ``on_ready`` once it listens (for what `serve` tells its user)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()


def serve(app: FastAPI, settings: Settings, on_ready: Callable[[], None] | None = None) -> None:
    raise_open_files_limit()
    quiet_garbage_collector()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=5,
        http=protocol_with_header_timeout(settings.header_timeout_s),
        limit_concurrency=settings.max_connections,
        backlog=2048,
    )
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is how it is meant to stop
        _Server(config, on_ready).run()
