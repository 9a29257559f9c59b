"""What the job endpoints do, as plain functions over the store and the queue."""

import functools
from datetime import datetime, timezone

from celery import Celery

from app.models import JobCreated, JobList, JobStatus, Links, Progress
from app.validation import Validated
from worker.broker import task_message
from worker.settings import Settings
from worker.store import AsyncJobStore, Job, Submission, new_submission

API_PREFIX = "/api/v1"


def links(job_id: str) -> Links:
    base = f"{API_PREFIX}/jobs/{job_id}"
    return Links(self=base, result=f"{base}/result", events=f"{base}/events")


def utc_time(value: float | None) -> datetime | None:
    """A record's Unix time as the API reports it."""
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


def job_status(job: Job) -> JobStatus:
    return JobStatus(
        id=job.id,
        status="cancelling" if job.state == "running" and job.cancel_requested else job.state,  # type: ignore[arg-type]
        progress=Progress(steps_done=job.steps_done, steps_total=job.steps_total),
        created_at=utc_time(job.created_at),  # type: ignore[arg-type]
        started_at=utc_time(job.started_at),
        finished_at=utc_time(job.finished_at),
        error=job.error,
        device=job.device,
        attempts=job.attempts,
        name=job.name,
        wall_s=job.wall_s,
        spikes=job.spikes,
        warnings=job.warnings,
        links=links(job.id),
    )


def job_submission(queue: Celery, settings: Settings, owner: str, validated: Validated, body: bytes | bytearray) -> Submission:
    """A validated job and its queue message, to be recorded in one atomic step (the queue is a
    list in the store's Redis) by ``AsyncJobStore.submit``. The worker runs ``validated.run``
    when the request had to be expanded (a NIR network), else the body."""
    body_view = memoryview(body)  # handed to Redis as it is: a copy of a large body would hold the GIL
    submitted = body_view if validated.run is not None else b""
    return new_submission(
        owner,
        validated.run or body_view,
        validated.steps,
        settings.max_jobs_in_flight_per_key,
        submitted,
        message=functools.partial(task_message, queue),
        live=bool(validated.summary["record_live"]),
        name=validated.summary["name"],
        quota=settings.max_stored_bytes_per_key,
        warnings=validated.summary["warnings"],
    )


def job_created(job: Job) -> JobCreated:
    return JobCreated(id=job.id, status="queued", links=links(job.id), warnings=job.warnings)


def next_page(path: str, offset: int, limit: int, total: int) -> str | None:
    """The link to a list's next page, if there is one."""
    following = offset + limit
    return f"{path}?offset={following}&limit={limit}" if following < total else None


async def list_jobs(store: AsyncJobStore, owner: str, offset: int, limit: int) -> JobList:
    jobs, total = await store.list_owned(owner, offset, limit)
    next_link = next_page(f"{API_PREFIX}/jobs", offset, limit, total)
    return JobList(jobs=[job_status(job) for job in jobs], total=total, offset=offset, limit=limit, next=next_link)
