"""The routes' dependencies, as ``Annotated`` aliases named for what they give, and the checks of
ownership the routes share."""

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Header, HTTPException, Query, Request, status

from app.auth import Owner
from app.events import StreamSlots, wait_final
from app.middleware import BODY_SCOPE_KEY
from app.services import Services
from worker.store import AsyncJobStore, Job, Sweep

__all__ = ["Owner"]
T = TypeVar("T")


# async: no thread hop for a dependency that never blocks
async def _services(request: Request) -> Services:
    return request.app.state.services


async def _store(request: Request) -> AsyncJobStore:
    return request.app.state.services.store


async def _json_body(request: Request) -> bytearray:
    """The raw JSON body as BodyGuard read it; validation happens off the event loop (app.validation)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        message = f"send the request body as application/json, not {content_type or 'without a content type'}"
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, message)
    return request.scope[BODY_SCOPE_KEY]


ServicesDep = Annotated[Services, Depends(_services)]
Store = Annotated[AsyncJobStore, Depends(_store)]
JsonBody = Annotated[bytearray, Depends(_json_body)]

# Long polling: how long a status or result request may wait for the job to end.
WaitSeconds = Annotated[float, Query(ge=0, le=60, description="wait up to this many seconds for the job to end before answering")]
Offset = Annotated[int, Query(ge=0, le=2**31, description="how many of the newest to skip")]
Limit = Annotated[int, Query(ge=1, le=200, description="how many to list")]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,20}-[0-9]{1,20}$", description="the id of the last spikes event received"),
]
# ?purge=true on DELETE: delete a finished job or sweep with its requests and results
Purge = Annotated[
    bool, Query(description="delete it, finished, with its request and results (its bytes no longer count against the quota)")
]


async def in_thread(function: Callable[[], T]) -> T:
    """CPU work (encoding a large result, a summary table) off the event loop."""
    return await anyio.to_thread.run_sync(function)


def owned_or_404(job: Job | None, owner: str) -> Job:
    if job is None or job.owner != owner:  # foreign and unknown ids look the same
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job")
    return job


async def owned(store: AsyncJobStore, job_id: str, owner: str) -> Job:
    return owned_or_404(await store.get(job_id), owner)


async def owned_sweep(store: AsyncJobStore, sweep_id: str, owner: str) -> Sweep:
    sweep = await store.sweep(sweep_id)
    if sweep is None or sweep.owner != owner:  # foreign and unknown ids look the same
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such sweep")
    return sweep


def take_slot(slots: StreamSlots, owner: str) -> None:
    """One of the key's event streams or long polls, or 429."""
    if not slots.try_acquire(owner):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"this key already has {slots.per_key} event streams or long polls open",
            headers={"Retry-After": "5"},
        )


@contextlib.asynccontextmanager
async def stream_slot(slots: StreamSlots, owner: str) -> AsyncIterator[None]:
    take_slot(slots, owner)
    try:
        yield
    finally:
        slots.release(owner)


async def owned_after_wait(services: Services, job_id: str, owner: str, wait_s: float) -> Job:
    job = await owned(services.store, job_id, owner)  # nobody waits on another key's job
    if wait_s > 0 and not job.is_final:
        async with stream_slot(services.slots, owner):
            await wait_final(services.store, services.hub, job_id, wait_s)
        job = await owned(services.store, job_id, owner)
    return job
