"""The FastAPI application: routes stay thin; the work is in app.jobs, app.store and app.events."""

import json
import logging
import pathlib
from typing import Annotated, Any, Literal

import anyio
import redis
import redis.asyncio as aioredis
from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from sse_starlette.sse import EventSourceResponse

from app.auth import Owner
from app.events import Subscribers, job_events, wait_final
from app.jobs import API_PREFIX, QueueUnavailable, job_status, list_jobs, submit_job
from app.metrics import StoreCollector
from app.models import (
    Health,
    JobCreated,
    JobList,
    JobStatus,
    LayerSummary,
    Message,
    Readiness,
    Validation,
    ValidationErrorResponse,
)
from app.settings import Settings
from app.store import AsyncJobReader, InFlightLimit, Job, JobStore
from worker.celery_app import make_celery
from worker.schema import InvalidRequest, JobRequest, clean_loc, loads_strict, validate_request

ROOT = pathlib.Path(__file__).parents[1]
log = logging.getLogger(__name__)
FRONTEND = ROOT / "frontend" / "dist"
EXAMPLES = ROOT / "examples"
WORKER_KEYS = "ss:workers:*"

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "missing or invalid API key"},
    404: {"model": Message, "description": "no such job for this key (unknown and foreign ids look the same)"},
}

# Long polling: how long a status or result request may wait for the job to end.
WaitSeconds = Annotated[float, Query(ge=0, le=60, description="wait up to this many seconds for the job to end before answering")]


def request_examples() -> dict[str, dict[str, Any]]:
    """The shipped examples/*.json, for the OpenAPI page and the viewer's menu."""
    return {
        path.stem: {"summary": path.stem.replace("_", " "), "value": json.loads(path.read_text())}
        for path in sorted(EXAMPLES.glob("*.json"))
    }


class BodySizeLimit:
    """413 for bodies over the limit, by Content-Length before reading, or while streaming."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = JSONResponse(
            {"detail": f"request body over the limit of {self.max_bytes} bytes"}, status.HTTP_413_CONTENT_TOO_LARGE
        )
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await too_large(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = JobStore.from_url(settings.redis_url, job_ttl_s=settings.job_ttl_s, result_ttl_s=settings.result_ttl_s)
    app = FastAPI(
        title="spikeserve",
        version="0.1.0",
        description="Remote spiking-neural-network simulation. Submit a network and its input; get spike trains back.",
    )
    app.state.settings = settings
    app.state.store = store
    app.state.queue = make_celery(settings)
    # Reads and subscriptions only, so retrying is safe: a pooled connection that a Redis restart
    # closed fails its first command (seen with uvloop), and the retry reconnects.
    app.state.async_redis = aioredis.Redis.from_url(
        settings.redis_url,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=10,
    )
    reader = AsyncJobReader(app.state.async_redis)
    subscribers = Subscribers(app.state.async_redis)
    registry = CollectorRegistry()  # no auto_describe: it would query Redis at start-up, failing while Redis is down
    registry.register(StoreCollector(store))

    @app.exception_handler(InvalidRequest)
    async def invalid_request(request: Request, error: InvalidRequest) -> JSONResponse:
        detail = [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in error.errors]
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and content_type.split(";")[0].strip() != "application/json":
            message = f"send the request body as application/json, not {content_type or 'without a content type'}"
            return JSONResponse({"detail": message}, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
        detail = []
        for e in error.errors():
            loc = tuple(e["loc"])
            loc = clean_loc(loc[1:]) if loc[:1] == ("body",) else loc
            detail.append({"loc": list(loc), "msg": e["msg"], "type": e["type"]})
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)

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

    @app.exception_handler(QueueUnavailable)
    async def queue_down(request: Request, error: QueueUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "the job queue is unavailable; try again"}, status.HTTP_503_SERVICE_UNAVAILABLE)

    jobs = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"], responses=ERRORS)
    examples = request_examples()

    def owned_or_404(job: Job | None, owner: str) -> Job:
        if job is None or job.owner != owner:  # foreign and unknown ids look the same
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job")
        return job

    async def owned(job_id: str, owner: str) -> Job:
        return owned_or_404(await reader.get(job_id), owner)

    @jobs.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=JobCreated,
        responses={
            413: {"model": Message, "description": "request body too large"},
            415: {"model": Message, "description": "the body is not application/json"},
            422: {"model": ValidationErrorResponse, "description": "invalid request; each error names the field path"},
            429: {"model": Message, "description": "too many jobs in flight for this key"},
            503: {"model": Message, "description": "the queue is unavailable"},
        },
    )
    async def create_job(
        request: Request, owner: Owner, job: Annotated[JobRequest, Body(openapi_examples=examples)]
    ) -> JobCreated:
        """Validate the request completely (shapes included) and queue it."""
        body = await request.body()
        loads_strict(body)  # the same JSON without duplicated keys, which json.loads would resolve silently
        return await _in_thread(submit_job, store, app.state.queue, settings, owner, job, body)

    @jobs.get("", response_model=JobList)
    async def get_jobs(
        owner: Owner, offset: Annotated[int, Query(ge=0, le=2**31)] = 0, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> JobList:
        """The caller's jobs, newest first."""
        return await _in_thread(list_jobs, store, owner, offset, limit)

    async def owned_after_wait(job_id: str, owner: str, wait_s: float) -> Job:
        job = await owned(job_id, owner)  # nobody waits on another key's job
        if wait_s > 0 and not job.is_final:
            await wait_final(reader, subscribers, job_id, wait_s)
            job = await owned(job_id, owner)
        return job

    @jobs.get("/{job_id}", response_model=JobStatus)
    async def get_job(job_id: str, owner: Owner, wait: WaitSeconds = 0.0) -> JobStatus:
        """The job's status; with ``wait``, answered as soon as the job is final (long polling)."""
        return job_status(await owned_after_wait(job_id, owner, wait))

    @jobs.get(
        "/{job_id}/result",
        responses={
            200: {"content": {"application/json": {}, "application/octet-stream": {}}, "description": "the result, JSON or NPZ"},
            409: {"model": Message, "description": "the job has not succeeded (yet)"},
            410: {"model": Message, "description": "the result has expired"},
        },
    )
    async def get_result(job_id: str, owner: Owner, format: Literal["json", "npz"] = "json", wait: WaitSeconds = 0.0) -> Response:
        """The result as JSON (default) or NPZ (``?format=npz``, one ``numpy.load``); with ``wait``,
        the answer waits up to that many seconds for the job to end."""
        if wait > 0:
            await owned_after_wait(job_id, owner, wait)
        found, data = await reader.get_with_result(job_id, format)
        job = owned_or_404(found, owner)
        if job.state != "succeeded":
            reason = (
                f"the job {job.state}" + (f": {job.error}" if job.error else "") if job.is_final else f"the job is {job.state}"
            )
            raise HTTPException(status.HTTP_409_CONFLICT, reason)
        if data is None:
            raise HTTPException(status.HTTP_410_GONE, "the result has expired")
        if format == "npz":
            headers = {"Content-Disposition": f'attachment; filename="{job_id}.npz"'}
            return Response(data, media_type="application/octet-stream", headers=headers)
        return Response(data, media_type="application/json")

    @jobs.get("/{job_id}/events", responses={200: {"content": {"text/event-stream": {}}, "description": "status events"}})
    async def get_events(job_id: str, owner: Owner) -> EventSourceResponse:
        """Server-Sent Events (``event: status``) with status and progress; the stream ends with the final state."""
        await owned(job_id, owner)
        return EventSourceResponse(job_events(reader, job_id), ping=15)

    @jobs.delete("/{job_id}", response_model=JobStatus)
    async def cancel_job(job_id: str, owner: Owner) -> JobStatus:
        """Cancel: a queued job never runs; a running one stops at its next chunk. Finished jobs are unchanged."""
        job = await owned(job_id, owner)
        if not job.is_final:
            job = await _in_thread(store.request_cancel, job_id)
        return job_status(job)

    @jobs.get(
        "/{job_id}/request", responses={200: {"content": {"application/json": {}}, "description": "the request as submitted"}}
    )
    async def get_job_request(job_id: str, owner: Owner) -> Response:
        """The job's request exactly as it was submitted."""
        await owned(job_id, owner)
        body = await _in_thread(store.request_json, job_id)
        if body is None:
            raise HTTPException(status.HTTP_410_GONE, "the request has expired")
        return Response(body, media_type="application/json")

    app.include_router(jobs)

    @app.post(
        f"{API_PREFIX}/validate",
        response_model=Validation,
        tags=["jobs"],
        responses={
            **ERRORS,
            422: {"model": ValidationErrorResponse, "description": "invalid request; each error names the field path"},
        },
    )
    async def validate(request: Request, owner: Owner, job: Annotated[JobRequest, Body(openapi_examples=examples)]) -> Validation:
        """Validate a request exactly as POST /jobs does, without queueing it."""
        loads_strict(await request.body())
        plan = await _in_thread(validate_request, job, settings.limits)
        layers = [LayerSummary(name=layer.name, type=layer.type, shape=list(layer.out_shape)) for layer in plan.layers]
        return Validation(steps=plan.steps, batch=plan.batch, neurons=plan.neurons, neuron_steps=plan.neuron_steps, layers=layers)

    @app.get(f"{API_PREFIX}/examples", tags=["jobs"])
    async def list_examples() -> dict[str, Any]:
        """The shipped example requests, by name."""
        return {name: example["value"] for name, example in examples.items()}

    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Readiness, tags=["operations"], responses={503: {"model": Readiness}})
    async def readyz() -> JSONResponse:
        """Ready when Redis answers and at least one worker has sent a heartbeat recently."""
        redis_ok = await _in_thread(store.ping)
        workers = len(await _in_thread(lambda: list(store.redis.scan_iter(WORKER_KEYS)))) if redis_ok else 0
        ready = redis_ok and workers > 0
        body = Readiness(status="ready" if ready else "not ready", redis=redis_ok, workers=workers)
        return JSONResponse(body.model_dump(), status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.get("/metrics", tags=["operations"], response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        return Response(await _in_thread(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)

    if FRONTEND.is_dir():
        app.mount("/", StaticFiles(directory=FRONTEND, html=True), name="viewer")
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
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


async def _in_thread(function: Any, *args: Any) -> Any:
    """Redis calls are blocking; keep them off the event loop."""
    return await anyio.to_thread.run_sync(lambda: function(*args))
