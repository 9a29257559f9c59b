"""The store's operations that both faces run (``JobStore`` in the workers and the CLI,
``AsyncJobStore`` on the API's event loop), each written once: the script it calls with its keys
and arguments, and how its reply becomes a value."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from worker.broker import QUEUE_KEY
from worker.store.keys import (
    STATS_KEY,
    job_key,
    owner_active_key,
    owner_jobs_key,
    owner_stored_key,
    owner_sweep_points_key,
    owner_sweeps_key,
    state_set_key,
    sweep_key,
    sweep_points_key,
    sweep_request_key,
)
from worker.store.records import FINAL_STATES, NO_QUOTA, Job, Submission, Sweep, check_submitted

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One script call: the script (a name in ``worker.store.scripts.SCRIPTS``), its keys and
    arguments, and what its reply means."""

    script: str
    keys: list[str]
    args: list[Any]
    parse: Callable[[Any], T]


def submit(submission: Submission) -> Call[Job]:
    """The job and its queue message, recorded in one atomic script (``new_submission``)."""

    def parse(reply: Any) -> Job:
        check_submitted(reply, submission.refusal, submission.bytes, submission.quota)
        return submission.job

    return Call("submit", submission.keys, submission.args, parse)


def stored_bytes(owner: str) -> Call[int]:
    """The bytes of requests and results the owner keeps (expired ones taken off)."""
    return Call("stored", [], [owner, time.time()], int)


def purge(job_id: str) -> Call[str]:
    """Deletes a finished job with its request and results, giving its owner the bytes back;
    "purged", or why not: "unknown", "not final", "in a sweep" (a sweep's point goes with it)."""
    return Call("purge", [job_key(job_id)], [job_id], bytes.decode)


def purge_sweep(sweep_id: str) -> Call[str]:
    """Deletes a finished sweep with every point's job, request and results: "purged", "unknown"
    or "not final"."""
    return Call(
        "purge_sweep", [sweep_key(sweep_id), sweep_request_key(sweep_id), sweep_points_key(sweep_id)], [sweep_id], bytes.decode
    )


def cancel(job_id: str, job_ttl_s: int) -> Call[bool]:
    """Flags the job; a queued job is cancelled at once, a running one by its worker at its next
    chunk, or when its dead worker's lease lapses. False for an unknown job."""
    return Call("cancel", [job_key(job_id), STATS_KEY], [time.time(), job_ttl_s], bool)


def cancel_sweep(sweep_id: str, job_ttl_s: int) -> Call[bool]:
    """Flags the sweep and cancels every point not yet finished (queued ones at once)."""
    return Call("cancel_sweep", [sweep_key(sweep_id), sweep_points_key(sweep_id), STATS_KEY], [time.time(), job_ttl_s], bool)


def reassign(old_owner: str, new_owner: str) -> Call[int]:
    """Every job and sweep of ``old_owner`` given to ``new_owner``; how many jobs."""
    keys = [owner_jobs_key(old_owner), owner_jobs_key(new_owner), owner_active_key(old_owner), owner_active_key(new_owner)]
    keys += [owner_sweeps_key(old_owner), owner_sweeps_key(new_owner)]
    keys += [owner_sweep_points_key(old_owner), owner_sweep_points_key(new_owner)]
    keys += [owner_stored_key(old_owner), owner_stored_key(old_owner) + ":expiry"]
    return Call("reassign", keys, [new_owner], int)


def _records(reply: Any) -> tuple[list[dict[bytes, bytes]], int]:
    total, flat = reply
    return [dict(zip(values[::2], values[1::2], strict=True)) for values in flat], int(total)


def jobs_page(owner: str, offset: int, limit: int) -> Call[tuple[list[Job], int]]:
    """A page of the owner's jobs, newest first, and how many there are: one round trip."""

    def parse(reply: Any) -> tuple[list[Job], int]:
        records, total = _records(reply)
        return [job for job in map(Job.from_raw, records) if job is not None], total

    return Call("page", [owner_jobs_key(owner)], [offset, limit, "job"], parse)


def sweeps_page(owner: str, offset: int, limit: int) -> Call[tuple[list[Sweep], int]]:
    """A page of the owner's sweeps, newest first, and how many there are."""

    def parse(reply: Any) -> tuple[list[Sweep], int]:
        records, total = _records(reply)
        return [sweep for sweep in map(Sweep.from_raw, records) if sweep is not None], total

    return Call("page", [owner_sweeps_key(owner)], [offset, limit, "sweep"], parse)


def create_sweep(
    owner: str,
    sweep_json: bytes | memoryview,
    mode: str,
    points: list[tuple[bytes, int, bool]],
    max_points_in_flight: int,
    message: Callable[[list[str]], bytes],
    groups: list[list[int]] | None = None,
    quota: int = NO_QUOTA,
    axes: bytes = b"",
) -> Call[Sweep]:
    """A new sweep whose points (request JSON, steps, live) are queued as jobs, with their queue
    messages (``message(job_ids)`` for each of ``groups``, lists of point indices that run
    together; default one per point), in one atomic script; InFlightLimit when the owner's
    unfinished sweep points would exceed ``max_points_in_flight``, StorageQuota when the sweep
    and its points' requests would pass the owner's ``quota`` of stored bytes. ``axes`` (JSON:
    ``worker.simulation.sweep.table_axes``) is kept for its summary table."""
    sweep_id = uuid.uuid4().hex
    now = time.time()
    keys = [
        sweep_key(sweep_id),
        sweep_request_key(sweep_id),
        sweep_points_key(sweep_id),
        owner_sweeps_key(owner),
        owner_sweep_points_key(owner),
        state_set_key("queued"),
        STATS_KEY,
        QUEUE_KEY,
    ]
    groups = groups if groups is not None else [[index] for index in range(len(points))]
    job_ids = [uuid.uuid4().hex for _ in points]
    args: list[Any] = [sweep_id, owner, now, max_points_in_flight, len(points), mode, sweep_json, len(groups), quota, axes]
    for job_id, (request_json, steps, live) in zip(job_ids, points, strict=True):
        args += [job_id, steps, request_json, int(live)]
    args += [message([job_ids[index] for index in group]) for group in groups]
    adding = len(sweep_json) + sum(len(request_json) for request_json, _, _ in points)

    def parse(reply: Any) -> Sweep:
        check_submitted(reply, f"this key's unfinished sweep points would exceed {max_points_in_flight}", adding, quota)
        return Sweep(sweep_id, owner, now, None, len(points), mode, dict.fromkeys(FINAL_STATES, 0), False)

    return Call("submit_sweep", keys, args, parse)
