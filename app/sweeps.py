"""What the sweep endpoints do, as plain functions over the store and the queue.

A sweep's points are ordinary jobs (each with its own URL, result and guarantees) whose records
name the sweep; the sweep's record counts how its points ended. Its status, progress and summary
table are read from its points' records.
"""

import functools
import json
from collections.abc import Sequence
from typing import Any

from celery import Celery

from app.jobs import API_PREFIX, next_page, utc_time
from app.models import PointCounts, Progress, SweepCreated, SweepLinks, SweepList, SweepStatus
from worker.broker import points_message
from worker.settings import Settings
from worker.simulation.sweep import Outcome, SweepRequest, table_axes
from worker.simulation.sweep import summary_table as sweep_table
from worker.store import AsyncJobStore, Sweep

SWEEPS_PREFIX = f"{API_PREFIX}/sweeps"


def sweep_links(sweep_id: str) -> SweepLinks:
    base = f"{SWEEPS_PREFIX}/{sweep_id}"
    return SweepLinks(self=base, summary=f"{base}/summary", events=f"{base}/events", request=f"{base}/request")


async def submit_sweep(
    store: AsyncJobStore, queue: Celery, settings: Settings, owner: str, checked: dict[str, Any], body: bytes | bytearray
) -> SweepCreated:
    """Records the sweep (as submitted) and queues its validated points (``checked``, from
    ``app.validation.check_sweep``) as jobs, with their messages (one per group of points that
    run batched), in one atomic step."""
    points = [(point["run"].encode(), point["steps"], point["live"]) for point in checked["points"]]
    sweep = await store.create_sweep(
        owner,
        memoryview(body),
        checked["mode"],
        points,
        settings.max_sweep_points_in_flight_per_key,
        functools.partial(points_message, queue),
        checked["groups"],
        settings.max_stored_bytes_per_key,
        json.dumps(checked["axes"], separators=(",", ":")).encode(),
    )
    return SweepCreated(id=sweep.id, status="queued", points=sweep.points, links=sweep_links(sweep.id))


def sweep_status(sweep: Sweep, points: Sequence[dict[str, str]] | None = None) -> SweepStatus:
    """The sweep's status from its record; with its points' records also how many run now and
    the steps done (a list leaves those out)."""
    ended = sum(sweep.ended.values())
    running = None if points is None else sum(point.get("state") == "running" for point in points)
    if sweep.is_final:
        if sweep.cancel_requested and sweep.ended["cancelled"]:
            state = "cancelled"
        elif sweep.ended["failed"]:
            state = "failed"
        else:
            state = "cancelled" if sweep.ended["cancelled"] else "succeeded"
    elif sweep.cancel_requested:
        state = "cancelling"
    else:
        state = "queued" if running == 0 and ended == 0 else "running"
    progress = None
    if points is not None:
        done = sum(int(point.get("steps_done", 0)) for point in points)
        progress = Progress(steps_done=done, steps_total=sum(int(point.get("steps_total", 0)) for point in points))
    return SweepStatus(
        id=sweep.id,
        status=state,  # type: ignore[arg-type]
        mode=sweep.mode,  # type: ignore[arg-type]
        points=PointCounts(total=sweep.points, ended=ended, running=running, **sweep.ended),
        progress=progress,
        created_at=utc_time(sweep.created_at),  # type: ignore[arg-type]
        finished_at=utc_time(sweep.finished_at),
        links=sweep_links(sweep.id),
    )


async def list_sweeps(store: AsyncJobStore, owner: str, offset: int, limit: int) -> SweepList:
    sweeps, total = await store.list_sweeps(owner, offset, limit)
    next_link = next_page(SWEEPS_PREFIX, offset, limit, total)
    return SweepList(sweeps=[sweep_status(sweep) for sweep in sweeps], total=total, offset=offset, limit=limit, next=next_link)


# --- the summary table ----------------------------------------------------------------------------


def summary_table(axes: dict[str, Any], points: Sequence[dict[str, str]]) -> tuple[list[str], list[list[Any]]]:
    """The summary table (``worker.simulation.sweep.summary_table``) from the sweep's ``axes``
    (``table_axes``) and its points' records; a point whose record expired has the state "expired"."""
    outcomes = [
        Outcome(
            job_id=point["id"],
            status=point.get("state", "expired"),
            wall_s=float(point["wall_s"]) if point.get("wall_s") else None,
            layers=json.loads(point["summary"]) if point.get("summary") else None,
            error=point.get("error") or None,
        )
        for point in points
    ]
    return sweep_table(axes, outcomes)


def axes_of(sweep_json: bytes) -> dict[str, Any]:
    """``table_axes`` of a sweep recorded without them (by an earlier version), from its request."""
    return table_axes(SweepRequest.model_validate_json(sweep_json))
