"""Sweeps: one request run many times with some of its values changed."""

import json
import typing
from typing import Literal

from fastapi import APIRouter, HTTPException, Response, status

from app.deps import JsonBody, Limit, Offset, Owner, Purge, ServicesDep, Store, in_thread, owned_sweep, take_slot
from app.events import EventStream, sweep_events
from app.models import Message, SweepCreated, SweepList, SweepStatus, SweepValidation
from app.routes.jobs import purged
from app.routes.responses import (
    ERRORS,
    PURGED,
    QUOTA_ERROR,
    REQUEST_ERRORS,
    SWEEP_REQUEST_BODY,
    TOO_MANY_STREAMS,
    as_submitted,
    stored_json,
)
from app.sweeps import SWEEPS_PREFIX, axes_of, list_sweeps, submit_sweep, summary_table, sweep_status
from worker.simulation.sweep import table_bytes
from worker.store import POINT_STATUS_FIELDS, AsyncJobStore

sweeps = APIRouter(prefix=SWEEPS_PREFIX, tags=["sweeps"], responses=ERRORS)


async def current_sweep_status(store: AsyncJobStore, sweep_id: str) -> SweepStatus | None:
    sweep = await store.sweep(sweep_id)
    return None if sweep is None else sweep_status(sweep, await store.sweep_points(sweep_id, POINT_STATUS_FIELDS))


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
async def create_sweep(services: ServicesDep, owner: Owner, body: JsonBody) -> SweepCreated:
    """Validate every point of the sweep (a 422 names the axis, the value and the field it lands
    in), check the sweep's total cost, and queue its points as jobs."""
    await services.capacity.check(len(body))
    checked = await services.validator.check_sweep(body)
    await services.capacity.check(sum(len(point["run"]) for point in checked["points"]))
    return await submit_sweep(services.store, services.queue, services.settings, owner, checked, body)


@sweeps.post("/validate", response_model=SweepValidation, openapi_extra=SWEEP_REQUEST_BODY, responses=REQUEST_ERRORS)
async def validate_sweep(services: ServicesDep, _: Owner, body: JsonBody) -> SweepValidation:
    """Check a sweep as ``POST /sweeps`` does (every point, a 422 naming the axis, the value and
    the field it lands in) without queueing anything."""
    checked = await services.validator.check_sweep(body)
    points = checked["points"]
    return SweepValidation(
        mode=checked["mode"], points=len(points), steps=sum(p["steps"] for p in points), batches=len(checked["groups"])
    )


@sweeps.get("", response_model=SweepList)
async def get_sweeps(store: Store, owner: Owner, offset: Offset = 0, limit: Limit = 50) -> SweepList:
    """The caller's sweeps, newest first (point counts only; a sweep's own page has its progress)."""
    return await list_sweeps(store, owner, offset, limit)


@sweeps.get("/{sweep_id}", response_model=SweepStatus)
async def get_sweep(store: Store, sweep_id: str, owner: Owner) -> SweepStatus:
    """The sweep's status: points by state, and the steps of all points together."""
    sweep = await owned_sweep(store, sweep_id, owner)
    return sweep_status(sweep, await store.sweep_points(sweep_id, POINT_STATUS_FIELDS))


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
    store: Store, sweep_id: str, owner: Owner, format: Literal["json", "csv", "npz"] = "json"
) -> Response:
    """The summary table, as JSON (``columns`` and ``rows``), CSV or NPZ (one array per column).
    Points still running have their state and no figures yet; each point's full result is at
    ``/api/v1/jobs/{job_id}/result``."""
    await owned_sweep(store, sweep_id, owner)
    recorded = await store.sweep_axes(sweep_id)
    if recorded is not None:
        axes = json.loads(recorded)
    else:
        sweep_json = await store.sweep_request(sweep_id)
        if sweep_json is None:
            raise HTTPException(status.HTTP_410_GONE, "the sweep has expired")
        axes = await in_thread(lambda: axes_of(sweep_json))
    columns, rows = summary_table(axes, await store.sweep_points(sweep_id))
    media_type = {"json": "application/json", "csv": "text/csv", "npz": "application/octet-stream"}[format]
    headers = {} if format == "json" else {"Content-Disposition": f'attachment; filename="sweep-{sweep_id}.{format}"'}
    return Response(await in_thread(lambda: table_bytes(columns, rows, format)), media_type=media_type, headers=headers)


@sweeps.get("/{sweep_id}/request", responses=as_submitted("sweep"))
async def get_sweep_request(store: Store, sweep_id: str, owner: Owner) -> Response:
    """The sweep exactly as it was submitted."""
    await owned_sweep(store, sweep_id, owner)
    return stored_json(await store.sweep_request(sweep_id), "sweep")


@sweeps.get(
    "/{sweep_id}/events",
    responses={200: {"content": {"text/event-stream": {}}, "description": "status events"}, **TOO_MANY_STREAMS},
)
async def get_sweep_events(services: ServicesDep, sweep_id: str, owner: Owner) -> EventStream:
    """Server-Sent Events (``status``, the sweep's status as GET returns it) when a point ends,
    and every second while points run; the stream ends with the sweep's final state."""
    await owned_sweep(services.store, sweep_id, owner)
    take_slot(services.slots, owner)

    async def read_status() -> dict | None:  # shared by every stream of the sweep in this process
        async def fetch() -> dict | None:
            current = await current_sweep_status(services.store, sweep_id)
            return None if current is None else current.model_dump(mode="json")

        return typing.cast("dict | None", await services.sweep_reads.read(sweep_id, fetch))

    return EventStream(sweep_events(services.hub, sweep_id, read_status), release=lambda: services.slots.release(owner))


@sweeps.delete("/{sweep_id}", response_model=SweepStatus, responses=PURGED)
async def cancel_sweep(store: Store, sweep_id: str, owner: Owner, purge: Purge = False) -> SweepStatus | Response:
    """Cancel every point not yet finished: queued points never run, running ones stop at their
    next chunk. Finished points keep their results. With ``purge=true``, a finished sweep is
    deleted with every point's request and results (204)."""
    sweep = await owned_sweep(store, sweep_id, owner)
    if purge:
        return purged(await store.purge_sweep(sweep_id), "sweep")
    if not sweep.is_final:
        await store.cancel_sweep(sweep_id)
    status_now = await current_sweep_status(store, sweep_id)
    if status_now is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such sweep")
    return status_now
