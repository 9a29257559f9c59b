"""The FastAPI application: routes stay thin; the work is in app.jobs, worker.store, app.events and
app.validation. Everything a route needs arrives as an ``Annotated`` dependency, read from the
application's ``Services`` (tests may override any of them)."""

import asyncio
import contextlib
import functools
import json
import logging
import pathlib
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
import redis
import redis.asyncio as aioredis
from celery import Celery
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from app.auth import ANONYMOUS, Owner, owner_for, owner_of_hash
from app.capacity import StoreCapacity, StoreFull
from app.events import SWEEP_READ_INTERVAL_S, EventHub, SharedReads, StreamSlots, job_events, sweep_events, wait_final
from app.jobs import API_PREFIX, job_created, job_status, job_submission, list_jobs
from app.metrics import StoreCollector
from app.models import (
    Health,
    JobCreated,
    JobList,
    JobStatus,
    Message,
    Readiness,
    Storage,
    SweepCreated,
    SweepList,
    SweepStatus,
    Validation,
    ValidationErrorResponse,
)
from app.sweeps import SWEEPS_PREFIX, axes_of, list_sweeps, submit_sweep, summary_table, sweep_status
from app.validation import Validator, ValidatorBusy
from worker.queue import make_celery
from worker.registry import viewer_models
from worker.settings import Settings
from worker.simulation.errors import InvalidRequest
from worker.simulation.parsing import clean_loc
from worker.simulation.request import JobRequest
from worker.simulation.results import Result
from worker.simulation.sweep import SweepRequest, table_bytes
from worker.store import POINT_STATUS_FIELDS, AsyncJobStore, InFlightLimit, Job, JobStore, StorageQuota, Sweep, heartbeat_key

log = logging.getLogger(__name__)
RESULT_PIECE_BYTES = 4 * 2**20  # results are read from Redis and sent in pieces of this size
READS_CLIENT_NAME = "spikeserve-api-reads"  # how the API's read connections show in Redis's CLIENT LIST
BODY_SCOPE_KEY = "spikeserve.body"  # where BodyGuard leaves a request's body

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "missing or invalid API key"},
    404: {"model": Message, "description": "no such job for this key (unknown and foreign ids look the same)"},
}
REQUEST_ERRORS: dict[int | str, dict[str, Any]] = {
    408: {"model": Message, "description": "the request body did not arrive in time"},
    413: {"model": Message, "description": "request body too large"},
    415: {"model": Message, "description": "the body is not application/json"},
    422: {"model": ValidationErrorResponse, "description": "invalid request; each error names the field path"},
    503: {"model": Message, "description": "the server is busy (too many large bodies or validations at once); retry"},
    507: {"model": Message, "description": "the job store is too full for new jobs; retry later"},
}
QUOTA_ERROR: dict[int | str, dict[str, Any]] = {
    403: {"model": Message, "description": "the key keeps as many bytes in the job store as its quota allows"}
}
PURGED: dict[int | str, dict[str, Any]] = {
    204: {"description": "purged: deleted with everything it kept"},
    409: {"model": Message, "description": "only what has finished can be purged"},
}
# ?purge=true on DELETE: delete a finished job or sweep with its requests and results
Purge = Annotated[
    bool, Query(description="delete it, finished, with its request and results (its bytes no longer count against the quota)")
]

# Long polling: how long a status or result request may wait for the job to end.
WaitSeconds = Annotated[float, Query(ge=0, le=60, description="wait up to this many seconds for the job to end before answering")]
Offset = Annotated[int, Query(ge=0, le=2**31, description="how many of the newest to skip")]
Limit = Annotated[int, Query(ge=1, le=200, description="how many to list")]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,20}-[0-9]{1,20}$", description="the id of the last spikes event received"),
]


def request_examples(directory: pathlib.Path) -> dict[str, dict[str, Any]]:
    """The shipped example requests, for the OpenAPI page and the viewer's menu."""
    return {
        path.stem: {"summary": path.stem.replace("_", " "), "value": json.loads(path.read_text())}
        for path in sorted(directory.glob("*.json"))
    }


# --- request bodies -------------------------------------------------------------------------------


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


async def json_body(request: Request) -> bytearray:
    """The raw JSON body as BodyGuard read it; validation happens off the event loop (app.validation)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        message = f"send the request body as application/json, not {content_type or 'without a content type'}"
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, message)
    return request.scope[BODY_SCOPE_KEY]


JsonBody = Annotated[bytearray, Depends(json_body)]


# --- services and dependencies --------------------------------------------------------------------


@dataclass
class Services:
    """What the routes use; one of each per API process."""

    settings: Settings
    store: JobStore
    async_store: AsyncJobStore
    hub: EventHub
    validator: Validator
    queue: Celery
    slots: StreamSlots
    registry: CollectorRegistry
    examples: dict[str, Any]
    capacity: StoreCapacity
    sweep_reads: SharedReads  # the sweep statuses that the event streams share


async def _services(request: Request) -> Services:  # async: no thread hop for a dependency that never blocks
    return request.app.state.services


async def _store(request: Request) -> JobStore:
    return request.app.state.services.store


async def _validator(request: Request) -> Validator:
    return request.app.state.services.validator


ServicesDep = Annotated[Services, Depends(_services)]
StoreDep = Annotated[JobStore, Depends(_store)]
ValidatorDep = Annotated[Validator, Depends(_validator)]


async def _in_thread(function: Any, *args: Any) -> Any:
    """Calls of the synchronous store block; keep them off the event loop."""
    return await anyio.to_thread.run_sync(lambda: function(*args))


def owned_or_404(job: Job | None, owner: str) -> Job:
    if job is None or job.owner != owner:  # foreign and unknown ids look the same
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job")
    return job


async def owned(reader: AsyncJobStore, job_id: str, owner: str) -> Job:
    return owned_or_404(await reader.get(job_id), owner)


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


async def owned_after_wait(app: Services, job_id: str, owner: str, wait_s: float) -> Job:
    job = await owned(app.async_store, job_id, owner)  # nobody waits on another key's job
    if wait_s > 0 and not job.is_final:
        async with stream_slot(app.slots, owner):
            await wait_final(app.async_store, app.hub, job_id, wait_s)
        job = await owned(app.async_store, job_id, owner)
    return job


class EventStream(StreamingResponse):
    """``text/event-stream`` that gives its key's slot back however it ends (finished, client gone).

    Starlette's streaming response costs one ``send`` per event; the event fan-out of 500 streams
    through sse-starlette took the event loop about 100 ms per message here, stalling every other
    request, so events are formatted once (app.events.sse) and written as they are.
    """

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], release: Any) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


# --- routes ---------------------------------------------------------------------------------------

JOB_REQUEST_BODY = {  # the examples are added with the schema (_openapi_with_request_schema)
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}}
}

SWEEP_REQUEST_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SweepRequest"}}}}
}

jobs = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"], responses=ERRORS)
sweeps = APIRouter(prefix=SWEEPS_PREFIX, tags=["sweeps"], responses=ERRORS)
requests = APIRouter(prefix=API_PREFIX, tags=["jobs"], responses=ERRORS)
operations = APIRouter(tags=["operations"])


@jobs.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobCreated,
    openapi_extra=JOB_REQUEST_BODY,
    responses={**REQUEST_ERRORS, **QUOTA_ERROR, 429: {"model": Message, "description": "too many jobs in flight for this key"}},
)
async def create_job(app: ServicesDep, owner: Owner, body: JsonBody) -> JobCreated:
    """Validate the request completely (shapes and cost included) and queue it."""
    await app.capacity.check(len(body))
    submission = functools.partial(job_submission, app.queue, app.settings, owner, body=body)
    job = await app.validator.check_then(
        body,
        lambda validated: app.store.submit(submission(validated)),
        on_loop=lambda validated: app.async_store.submit(submission(validated)),
    )
    return job_created(job)


@jobs.get("", response_model=JobList)
async def get_jobs(store: StoreDep, owner: Owner, offset: Offset = 0, limit: Limit = 50) -> JobList:
    """The caller's jobs, newest first."""
    return await _in_thread(list_jobs, store, owner, offset, limit)


@jobs.get("/{job_id}", response_model=JobStatus, responses={429: {"model": Message, "description": "too many waits open"}})
async def get_job(app: ServicesDep, job_id: str, owner: Owner, wait: WaitSeconds = 0.0) -> JobStatus:
    """The job's status; with ``wait``, answered as soon as the job is final (long polling)."""
    return job_status(await owned_after_wait(app, job_id, owner, wait))


@jobs.get(
    "/{job_id}/result",
    responses={
        200: {"content": {"application/json": {}, "application/octet-stream": {}}, "description": "the result, JSON or NPZ"},
        409: {"model": Message, "description": "the job has not succeeded (yet)"},
        410: {"model": Message, "description": "the result has expired"},
        429: {"model": Message, "description": "too many waits open"},
    },
)
async def get_result(
    app: ServicesDep, job_id: str, owner: Owner, format: Literal["json", "npz"] = "json", wait: WaitSeconds = 0.0
) -> Response:
    """The result as JSON (default) or NPZ (``?format=npz``, one ``numpy.load``); with ``wait``,
    the answer waits up to that many seconds for the job to end."""
    if wait > 0:
        await owned_after_wait(app, job_id, owner, wait)
    found, head, size = await app.async_store.get_with_result(job_id, format, RESULT_PIECE_BYTES)
    job = owned_or_404(found, owner)
    if job.state != "succeeded":
        reason = f"the job {job.state}" + (f": {job.error}" if job.error else "") if job.is_final else f"the job is {job.state}"
        raise HTTPException(status.HTTP_409_CONFLICT, reason)
    if head is None and format == "json":  # kept as NPZ only (worker.simulation.results.JSON_ON_REQUEST_BYTES)
        npz = await app.async_store.result_whole(job_id, "npz")
        if npz is not None:
            return Response(await _in_thread(lambda: Result.from_npz(npz).to_json()), media_type="application/json")
    if head is None:
        raise HTTPException(status.HTTP_410_GONE, "the result has expired")
    media_type = "application/octet-stream" if format == "npz" else "application/json"
    headers = {"Content-Disposition": f'attachment; filename="{job_id}.npz"'} if format == "npz" else {}
    if size <= len(head):
        return Response(head, media_type=media_type, headers=headers)

    async def pieces() -> AsyncIterator[bytes]:
        yield head
        for start in range(len(head), size, RESULT_PIECE_BYTES):
            piece = await app.async_store.result_range(job_id, format, start, min(size, start + RESULT_PIECE_BYTES))
            if not piece:  # expired meanwhile: the short body tells the client
                return
            yield piece

    return StreamingResponse(pieces(), media_type=media_type, headers={**headers, "Content-Length": str(size)})


@jobs.get(
    "/{job_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "status events"},
        429: {"model": Message, "description": "too many event streams open for this key"},
    },
)
async def get_events(app: ServicesDep, job_id: str, owner: Owner, last_event_id: LastEventId = None) -> EventStream:
    """Server-Sent Events: ``status`` (state and progress; the stream ends with the final state)
    and, for the layers in the request's ``record.live``, ``spikes`` after every chunk. A client
    that reconnects with ``Last-Event-ID`` gets the chunks after that one."""
    await owned(app.async_store, job_id, owner)
    take_slot(app.slots, owner)
    events = job_events(app.async_store, app.hub, job_id, after=last_event_id or "0")
    return EventStream(events, release=lambda: app.slots.release(owner))


@jobs.delete("/{job_id}", response_model=JobStatus, responses=PURGED)
async def cancel_job(app: ServicesDep, job_id: str, owner: Owner, purge: Purge = False) -> JobStatus | Response:
    """Cancel: a queued job never runs; a running one stops at its next chunk. Finished jobs are
    unchanged. With ``purge=true``, a finished job is deleted with its request and results (204);
    a sweep's point goes with its sweep."""
    job = await owned(app.async_store, job_id, owner)
    if purge:
        return purged(await _in_thread(app.store.purge, job_id), "job")
    if not job.is_final:
        job = await _in_thread(app.store.request_cancel, job_id)
    return job_status(job)


def purged(outcome: str, what: str) -> Response:
    """The answer to a purge: 204, or why not."""
    if outcome == "purged":
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    if outcome == "unknown":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such {what}")
    reason = (
        f"the {what} has not finished: cancel it first" if outcome == "not final" else f"the {what} is {outcome}: purge its sweep"
    )
    raise HTTPException(status.HTTP_409_CONFLICT, reason)


@jobs.get("/{job_id}/request", responses={200: {"content": {"application/json": {}}, "description": "the request as submitted"}})
async def get_job_request(app: ServicesDep, job_id: str, owner: Owner) -> Response:
    """The job's request exactly as it was submitted."""
    await owned(app.async_store, job_id, owner)
    body = await _in_thread(app.store.request_json, job_id)
    if body is None:
        raise HTTPException(status.HTTP_410_GONE, "the request has expired")
    return Response(body, media_type="application/json")


async def owned_sweep(reader: AsyncJobStore, sweep_id: str, owner: str) -> Sweep:
    sweep = await reader.sweep(sweep_id)
    if sweep is None or sweep.owner != owner:  # foreign and unknown ids look the same
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such sweep")
    return sweep


async def current_sweep_status(reader: AsyncJobStore, sweep_id: str) -> SweepStatus | None:
    sweep = await reader.sweep(sweep_id)
    return None if sweep is None else sweep_status(sweep, await reader.sweep_points(sweep_id, POINT_STATUS_FIELDS))


@sweeps.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepCreated,
    openapi_extra=SWEEP_REQUEST_BODY,
    responses={
        **REQUEST_ERRORS,
        **QUOTA_ERROR,
        429: {"model": Message, "description": "too many sweep points in flight for this key"},
    },
)
async def create_sweep(app: ServicesDep, owner: Owner, body: JsonBody) -> SweepCreated:
    """Validate every point of the sweep (a 422 names the axis, the value and the field it lands
    in), check the sweep's total cost, and queue its points as jobs."""
    await app.capacity.check(len(body))
    checked = await app.validator.check_sweep(body)
    await app.capacity.check(sum(len(point["run"]) for point in checked["points"]))
    return await _in_thread(submit_sweep, app.store, app.queue, app.settings, owner, checked, body)


@sweeps.get("", response_model=SweepList)
async def get_sweeps(store: StoreDep, owner: Owner, offset: Offset = 0, limit: Limit = 50) -> SweepList:
    """The caller's sweeps, newest first (point counts only; a sweep's own page has its progress)."""
    return await _in_thread(list_sweeps, store, owner, offset, limit)


@sweeps.get("/{sweep_id}", response_model=SweepStatus)
async def get_sweep(app: ServicesDep, sweep_id: str, owner: Owner) -> SweepStatus:
    """The sweep's status: points by state, and the steps of all points together."""
    sweep = await owned_sweep(app.async_store, sweep_id, owner)
    return sweep_status(sweep, await app.async_store.sweep_points(sweep_id, POINT_STATUS_FIELDS))


@sweeps.get(
    "/{sweep_id}/summary",
    responses={
        200: {
            "content": {"application/json": {}, "text/csv": {}, "application/octet-stream": {}},
            "description": "one row per point: index, job id, state, axis values, wall time, spikes and rate per layer, error",
        }
    },
)
async def get_sweep_summary(
    app: ServicesDep, sweep_id: str, owner: Owner, format: Literal["json", "csv", "npz"] = "json"
) -> Response:
    """The summary table, as JSON (``columns`` and ``rows``), CSV or NPZ (one array per column).
    Points still running have their state and no figures yet; each point's full result is at
    ``/api/v1/jobs/{job_id}/result``."""
    await owned_sweep(app.async_store, sweep_id, owner)
    recorded = await app.async_store.sweep_axes(sweep_id)
    if recorded is not None:
        axes = json.loads(recorded)
    else:
        sweep_json = await app.async_store.sweep_request(sweep_id)
        if sweep_json is None:
            raise HTTPException(status.HTTP_410_GONE, "the sweep has expired")
        axes = await _in_thread(axes_of, sweep_json)
    columns, rows = summary_table(axes, await app.async_store.sweep_points(sweep_id))
    media_type = {"json": "application/json", "csv": "text/csv", "npz": "application/octet-stream"}[format]
    headers = {} if format == "json" else {"Content-Disposition": f'attachment; filename="sweep-{sweep_id}.{format}"'}
    return Response(await _in_thread(table_bytes, columns, rows, format), media_type=media_type, headers=headers)


@sweeps.get(
    "/{sweep_id}/request", responses={200: {"content": {"application/json": {}}, "description": "the sweep as submitted"}}
)
async def get_sweep_request(app: ServicesDep, sweep_id: str, owner: Owner) -> Response:
    """The sweep exactly as it was submitted."""
    await owned_sweep(app.async_store, sweep_id, owner)
    body = await app.async_store.sweep_request(sweep_id)
    if body is None:
        raise HTTPException(status.HTTP_410_GONE, "the sweep has expired")
    return Response(body, media_type="application/json")


@sweeps.get(
    "/{sweep_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "status events"},
        429: {"model": Message, "description": "too many event streams open for this key"},
    },
)
async def get_sweep_events(app: ServicesDep, sweep_id: str, owner: Owner) -> EventStream:
    """Server-Sent Events (``status``, the sweep's status as GET returns it) when a point ends,
    and every second while points run; the stream ends with the sweep's final state."""
    await owned_sweep(app.async_store, sweep_id, owner)
    take_slot(app.slots, owner)

    async def read_status() -> dict | None:  # shared by every stream of the sweep in this process
        async def fetch() -> dict | None:
            current = await current_sweep_status(app.async_store, sweep_id)
            return None if current is None else current.model_dump(mode="json")

        return typing.cast("dict | None", await app.sweep_reads.read(sweep_id, fetch))

    return EventStream(sweep_events(app.hub, sweep_id, read_status), release=lambda: app.slots.release(owner))


@sweeps.delete("/{sweep_id}", response_model=SweepStatus, responses=PURGED)
async def cancel_sweep(app: ServicesDep, sweep_id: str, owner: Owner, purge: Purge = False) -> SweepStatus | Response:
    """Cancel every point not yet finished: queued points never run, running ones stop at their
    next chunk. Finished points keep their results. With ``purge=true``, a finished sweep is
    deleted with every point's request and results (204)."""
    sweep = await owned_sweep(app.async_store, sweep_id, owner)
    if purge:
        return purged(await _in_thread(app.store.purge_sweep, sweep_id), "sweep")
    if not sweep.is_final:
        await _in_thread(app.store.cancel_sweep, sweep_id)
    status_now = await current_sweep_status(app.async_store, sweep_id)
    if status_now is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such sweep")
    return status_now


@requests.post("/validate", response_model=Validation, openapi_extra=JOB_REQUEST_BODY, responses=REQUEST_ERRORS)
async def validate(validator: ValidatorDep, owner: Owner, body: JsonBody) -> Validation:
    """Validate a request exactly as POST /jobs does, without queueing it; with its cost."""
    return Validation.model_validate((await validator.check(body)).summary)


@requests.get("/storage", response_model=Storage)
async def storage(app: ServicesDep, owner: Owner) -> Storage:
    """The bytes of requests and results this key keeps in the job store, and its quota."""
    return Storage(stored_bytes=await app.async_store.stored_bytes(owner), quota_bytes=app.settings.max_stored_bytes_per_key)


@requests.get("/examples")
async def list_examples(app: ServicesDep) -> dict[str, Any]:
    """The shipped example requests, by name."""
    return {name: example["value"] for name, example in app.examples.items()}


@operations.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@operations.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(store: StoreDep) -> JSONResponse:
    """Ready when Redis answers and at least one worker has sent a heartbeat recently."""
    redis_ok = await _in_thread(store.ping)
    workers = len(await _in_thread(lambda: list(store.redis.scan_iter(heartbeat_key("*"))))) if redis_ok else 0
    ready = redis_ok and workers > 0
    body = Readiness(status="ready" if ready else "not ready", redis=redis_ok, workers=workers)
    return JSONResponse(body.model_dump(), status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE)


@operations.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {"model": Message, "description": "a key is required"}},
)
async def metrics(request: Request, app: ServicesDep) -> Response:
    """Prometheus metrics; with API keys configured, only for a valid key unless SPIKESERVE_METRICS_PUBLIC is set."""
    if not app.settings.metrics_public:
        owner_for(request.headers.get("authorization"), app.settings)
    return Response(await _in_thread(generate_latest, app.registry), media_type=CONTENT_TYPE_LATEST)


# --- the application ------------------------------------------------------------------------------


def _openapi_with_request_schema(app: FastAPI, examples: dict[str, Any]) -> dict[str, Any]:
    """The request body is read raw (validated off the event loop), so its schema and examples
    are added here."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        request_schema = JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request_schema.pop("$defs", {}))
        components["JobRequest"] = request_schema
        sweep_schema = SweepRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(sweep_schema.pop("$defs", {}))
        sweep_schema["properties"]["base"] = {
            "$ref": "#/components/schemas/JobRequest",
            "description": "the request every point starts from",
        }
        components["SweepRequest"] = sweep_schema
        schema["x-neuron-models"] = viewer_models()  # what the viewer shows of each model (thresholds, units)
        for operations in schema["paths"].values():
            for operation in operations.values():
                body = operation.get("requestBody", {}).get("content", {}).get("application/json")
                if body is not None and body.get("schema") == {"$ref": "#/components/schemas/JobRequest"}:
                    body["examples"] = examples
        app.openapi_schema = schema
    return app.openapi_schema


def _exception_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidRequest)
    async def invalid_request(request: Request, error: InvalidRequest) -> JSONResponse:
        detail = [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in error.errors]
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = []
        for e in error.errors():
            loc = tuple(e["loc"])
            loc = clean_loc(loc[1:]) if loc[:1] == ("body",) else loc
            detail.append({"loc": list(loc), "msg": e["msg"], "type": e["type"]})
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(StorageQuota)
    async def over_quota(request: Request, error: StorageQuota) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status.HTTP_403_FORBIDDEN)

    @app.exception_handler(StoreFull)
    async def store_full(request: Request, error: StoreFull) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status.HTTP_507_INSUFFICIENT_STORAGE, headers={"Retry-After": "30"})

    @app.exception_handler(InFlightLimit)
    async def too_many(request: Request, error: InFlightLimit) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": "5"})

    @app.exception_handler(redis.RedisError)
    async def store_down(request: Request, error: redis.RedisError) -> JSONResponse:
        log.warning("%s %s: the job store is unavailable: %r", request.method, request.url.path, error)
        return JSONResponse(
            {"detail": "the job store is unavailable; try again"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ValidatorBusy)
    async def validator_busy(request: Request, error: ValidatorBusy) -> JSONResponse:
        return JSONResponse(
            {"detail": f"the server is busy validating other requests ({error}); retry"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )


def adopt_anonymous_jobs(store: JobStore, settings: Settings) -> None:
    """With keys configured, the jobs made while the server ran without keys belong to no key:
    SPIKESERVE_ANONYMOUS_JOBS_TO gives them to one; without it they stay hidden, and the log says so."""
    if not settings.auth_enabled:
        return
    try:
        if settings.anonymous_jobs_to is not None:
            moved = store.reassign(ANONYMOUS, owner_of_hash(settings.anonymous_jobs_to))
            if moved:
                log.warning("%d jobs made without a key now belong to the key %s", moved, settings.anonymous_jobs_to[:15])
        elif hidden := store.owned_count(ANONYMOUS):
            log.warning(
                "%d jobs made while the server ran without keys are hidden from every key; "
                "SPIKESERVE_ANONYMOUS_JOBS_TO='sha256:...' gives them to one",
                hidden,
            )
    except redis.RedisError:
        log.warning("could not look for jobs made without a key: the job store is unavailable")


def make_services(settings: Settings) -> Services:
    # Reads and subscriptions only, so retrying is safe: a pooled connection that a Redis restart
    # closed fails its first command (seen with uvloop), and the retry reconnects. The pool is
    # bounded and waits for a free connection instead of failing: every stream and long poll
    # shares the event hub's one connection, so the pool serves only short reads.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_connections,
        timeout=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=10,
        client_name=READS_CLIENT_NAME,
    )
    client = aioredis.Redis(connection_pool=pool)
    store = JobStore.from_settings(settings)
    registry = CollectorRegistry()  # no auto_describe: it would query Redis at start-up, failing while Redis is down
    registry.register(StoreCollector(store))
    return Services(
        settings=settings,
        store=store,
        async_store=AsyncJobStore(client),
        hub=EventHub(aioredis.Redis.from_url(settings.redis_url, client_name=READS_CLIENT_NAME, retry_on_error=[])),
        validator=Validator(
            settings.limits, settings.validation_processes, settings.validation_timeout_s, settings.validation_memory_bytes
        ),
        queue=make_celery(settings),
        slots=StreamSlots(settings.max_streams_per_key),
        registry=registry,
        examples=request_examples(settings.examples_dir),
        capacity=StoreCapacity(client, settings.store_full_fraction),
        sweep_reads=SharedReads(SWEEP_READ_INTERVAL_S),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app_services = make_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _in_thread(adopt_anonymous_jobs, app_services.store, settings)
        yield
        await app_services.validator.aclose()
        await app_services.hub.aclose()
        await app_services.hub.client.aclose()
        await app_services.async_store.redis.aclose()

    app = FastAPI(
        title="spikeserve",
        version="0.1.0",
        description="Remote spiking-neural-network simulation. Submit a network and its input; get spike trains back.",
        lifespan=lifespan,
    )
    app.state.services = app_services
    app.openapi = lambda: _openapi_with_request_schema(app, app_services.examples)  # type: ignore[method-assign]
    _exception_handlers(app)
    for router in (jobs, sweeps, requests, operations):
        app.include_router(router)
    if settings.viewer_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.viewer_dir, html=True), name="viewer")
    else:

        @app.get("/", include_in_schema=False)
        async def no_viewer() -> RedirectResponse:
            return RedirectResponse("/docs")

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.max_body_bytes,
        budget_bytes=settings.max_buffered_body_bytes,
        timeout_s=settings.body_timeout_s,
        idle_timeout_s=settings.body_idle_timeout_s,
    )
    return app
