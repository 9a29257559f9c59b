"""Jobs: submit, follow, fetch, cancel or purge; and checking a request without queueing it."""

from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import StreamingResponse

from app.deps import (
    JsonBody,
    LastEventId,
    Limit,
    Offset,
    Owner,
    Purge,
    ServicesDep,
    Store,
    WaitSeconds,
    in_thread,
    owned,
    owned_after_wait,
    owned_or_404,
    take_slot,
)
from app.events import EventStream, job_events
from app.jobs import API_PREFIX, job_created, job_status, job_submission, list_jobs
from app.models import JobCreated, JobList, JobStatus, Message, Storage, Validation
from app.routes.responses import (
    ERRORS,
    JOB_REQUEST_BODY,
    PURGED,
    QUOTA_ERROR,
    REQUEST_ERRORS,
    TOO_MANY_STREAMS,
    TOO_MANY_WAITS,
    as_submitted,
    stored_json,
)
from worker.simulation.results import Result

RESULT_PIECE_BYTES = 2**20  # results are read from Redis and sent in pieces of this size

jobs = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"], responses=ERRORS)
requests = APIRouter(prefix=API_PREFIX, tags=["jobs"], responses=ERRORS)


@jobs.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobCreated,
    openapi_extra=JOB_REQUEST_BODY,
    responses={**REQUEST_ERRORS, **QUOTA_ERROR, 429: {"model": Message, "description": "too many jobs in flight for this key"}},
)
async def create_job(services: ServicesDep, owner: Owner, body: JsonBody) -> JobCreated:
    """Validate the request completely (shapes and cost included) and queue it."""
    await services.capacity.check(len(body))
    validated = await services.validator.check(body)
    job = await services.store.submit(job_submission(services.queue, services.settings, owner, validated, body))
    return job_created(job)


@jobs.get("", response_model=JobList)
async def get_jobs(store: Store, owner: Owner, offset: Offset = 0, limit: Limit = 50) -> JobList:
    """The caller's jobs, newest first."""
    return await list_jobs(store, owner, offset, limit)


@jobs.get("/{job_id}", response_model=JobStatus, responses=TOO_MANY_WAITS)
async def get_job(services: ServicesDep, job_id: str, owner: Owner, wait: WaitSeconds = 0.0) -> JobStatus:
    """The job's status; with ``wait``, answered as soon as the job is final (long polling)."""
    return job_status(await owned_after_wait(services, job_id, owner, wait))


@jobs.get(
    "/{job_id}/result",
    responses={
        200: {"content": {"application/json": {}, "application/octet-stream": {}}, "description": "the result, JSON or NPZ"},
        409: {"model": Message, "description": "the job has not succeeded (yet)"},
        410: {"model": Message, "description": "the result has expired"},
        **TOO_MANY_WAITS,
    },
)
async def get_result(
    services: ServicesDep, job_id: str, owner: Owner, format: Literal["json", "npz"] = "json", wait: WaitSeconds = 0.0
) -> Response:
    """The result as JSON (default) or NPZ (``?format=npz``, one ``numpy.load``); with ``wait``,
    the answer waits up to that many seconds for the job to end."""
    store = services.store
    if wait > 0:
        await owned_after_wait(services, job_id, owner, wait)
    found, head, size = await store.get_with_result(job_id, format, RESULT_PIECE_BYTES)
    job = owned_or_404(found, owner)
    if job.state != "succeeded":
        reason = f"the job {job.state}" + (f": {job.error}" if job.error else "") if job.is_final else f"the job is {job.state}"
        raise HTTPException(status.HTTP_409_CONFLICT, reason)
    if head is None and format == "json":  # kept as NPZ only (worker.simulation.results.JSON_ON_REQUEST_BYTES)
        npz = await store.result_whole(job_id, "npz")
        if npz is not None:
            return Response(await in_thread(lambda: Result.from_npz(npz).to_json()), media_type="application/json")
    if head is None:
        raise HTTPException(status.HTTP_410_GONE, "the result has expired")
    media_type = "application/octet-stream" if format == "npz" else "application/json"
    headers = {"Content-Disposition": f'attachment; filename="{job_id}.npz"'} if format == "npz" else {}
    if size <= len(head):
        return Response(head, media_type=media_type, headers=headers)

    async def pieces() -> AsyncIterator[bytes]:
        yield head
        for start in range(len(head), size, RESULT_PIECE_BYTES):
            piece = await store.result_range(job_id, format, start, min(size, start + RESULT_PIECE_BYTES))
            if not piece:  # expired meanwhile: the short body tells the client
                return
            yield piece

    return StreamingResponse(pieces(), media_type=media_type, headers={**headers, "Content-Length": str(size)})


@jobs.get(
    "/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {}}, "description": "status events"}, **TOO_MANY_STREAMS},
)
async def get_events(services: ServicesDep, job_id: str, owner: Owner, last_event_id: LastEventId = None) -> EventStream:
    """Server-Sent Events: ``status`` (state and progress; the stream ends with the final state)
    and, for the layers in the request's ``record.live``, ``spikes`` after every chunk. A client
    that reconnects with ``Last-Event-ID`` gets the chunks after that one."""
    await owned(services.store, job_id, owner)
    take_slot(services.slots, owner)
    events = job_events(services.store, services.hub, job_id, after=last_event_id or "0")
    return EventStream(events, release=lambda: services.slots.release(owner))


@jobs.delete("/{job_id}", response_model=JobStatus, responses=PURGED)
async def cancel_job(store: Store, job_id: str, owner: Owner, purge: Purge = False) -> JobStatus | Response:
    """Cancel: a queued job never runs; a running one stops at its next chunk. Finished jobs are
    unchanged. With ``purge=true``, a finished job is deleted with its request and results (204);
    a sweep's point goes with its sweep."""
    job = await owned(store, job_id, owner)
    if purge:
        return purged(await store.purge(job_id), "job")
    if not job.is_final:
        job = owned_or_404(await store.request_cancel(job_id), owner)
    return job_status(job)


def purged(outcome: str, what: str) -> Response:
    """The answer to a purge: 204, or why not."""
    if outcome == "purged":
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    if outcome == "unknown":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such {what}")
    if outcome == "not final":
        raise HTTPException(status.HTTP_409_CONFLICT, f"the {what} has not finished: cancel it first")
    raise HTTPException(status.HTTP_409_CONFLICT, f"the {what} is {outcome}: purge its sweep")


@jobs.get("/{job_id}/request", responses=as_submitted("request"))
async def get_job_request(store: Store, job_id: str, owner: Owner) -> Response:
    """The job's request exactly as it was submitted."""
    await owned(store, job_id, owner)
    return stored_json(await store.request_json(job_id), "request")


@requests.post("/validate", response_model=Validation, openapi_extra=JOB_REQUEST_BODY, responses=REQUEST_ERRORS)
async def validate(services: ServicesDep, owner: Owner, body: JsonBody) -> Validation:
    """Validate a request exactly as POST /jobs does, without queueing it; with its cost."""
    return Validation.model_validate((await services.validator.check(body)).summary)


@requests.get("/storage", response_model=Storage)
async def storage(services: ServicesDep, owner: Owner) -> Storage:
    """The bytes of requests and results this key keeps in the job store, and its quota."""
    return Storage(stored_bytes=await services.store.stored_bytes(owner), quota_bytes=services.settings.max_stored_bytes_per_key)


@requests.get("/examples")
async def list_examples(services: ServicesDep) -> dict[str, Any]:
    """The shipped example requests, by name; the one call under /api/v1 that needs no key."""
    return {name: example["value"] for name, example in services.examples.items()}
