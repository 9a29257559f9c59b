"""Parameter sweeps: a base request, axes that each set one place in it to a list of values, and
the points they make (every combination, or the values taken pairwise). Plain JSON in, plain
JSON out: every point is an ordinary job request, validated like one.

An axis's ``path`` is written as in error messages: ``seed``, ``input.rates``,
``network.layers[1].params.v_th``; a layer may also be named, ``network.layers[out].params.v_th``.
Objects missing on the way are created (``params`` of a layer that has none); a list index must
exist in the base.
"""

import copy
import functools
import io
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, SkipValidation, ValidationError

from worker.registry import MODELS
from worker.simulation.errors import FieldError, InvalidRequest, Loc, fail, format_loc
from worker.simulation.limits import Limits
from worker.simulation.parsing import clean_loc, loads_strict
from worker.simulation.plan import prepare_request
from worker.simulation.plans import Plan
from worker.simulation.request import JobRequest
from worker.simulation.results import table_cell, write_csv, write_npz

MAX_AXES = 8
MAX_ERRORS = 20  # a sweep with many bad points reports this many, and how many there were
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\[\]]+\])*)")
_INDEX = re.compile(r"\[([^\[\]]+)\]")


# A sweep is validated from decoded JSON (``parse_sweep``), so its values are JSON already:
# checking each element again cost seconds for an axis of large tensors. Each point is then
# validated as a job request.
Json = Annotated[JsonValue, SkipValidation]


class Axis(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    path: str = Field(min_length=1, max_length=200, description="the place in the request, e.g. network.layers[1].params.v_th")
    values: list[Json] = Field(min_length=1, description="the values it takes, one per point (or per grid line)")

    @functools.cached_property
    def value_bytes(self) -> list[int]:
        """Each value's size as compact JSON, measured once (a tensor of 400,000 numbers took 0.2 s)."""
        return [len(json.dumps(value, separators=(",", ":"))) for value in self.values]


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    base: dict[str, Json] = Field(description="a job request; every point is this request with the axes' values set")
    axes: list[Axis] = Field(min_length=1, max_length=MAX_AXES)
    mode: Literal["grid", "zip"] = Field(default="grid", description="grid: every combination; zip: the i-th values together")
    batched: bool = Field(
        default=True,
        description="run short points that differ only in neuron parameters, Poisson rates or the seed as the entries of "
        "one batched simulation (the same results, less overhead); false: every point as a job of its own",
    )


@dataclass(frozen=True)
class Outcome:
    """How one point ended, for the summary table: its job, state, wall time, per-layer spikes
    and rates (``Result.spike_summary``) and the error of a point that failed."""

    job_id: str
    status: str
    wall_s: float | None = None
    layers: dict[str, dict[str, float]] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Point:
    """One point: its values (one per axis), the request it makes and what validation learned."""

    values: tuple[Any, ...]
    request: dict[str, Any]
    parsed: JobRequest
    plan: Plan


def parse_path(path: str) -> list[str | int]:
    """``network.layers[1].params.v_th`` -> ``["network", "layers", 1, "params", "v_th"]``; a
    bracket that is not a number stays a string (a layer's name)."""
    parts: list[str | int] = []
    for segment in path.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ValueError(f"{segment!r} is not a field name optionally followed by [index] or [layer name]")
        parts.append(match.group(1))
        for index in _INDEX.findall(match.group(2)):
            parts.append(int(index) if index.isdigit() else index)
    return parts


def resolve(base: dict[str, Any], parts: list[str | int]) -> Loc:
    """The path's place in ``base`` with layer names replaced by their positions; ValueError when
    a list index or a name does not exist there."""
    loc: list[str | int] = []
    node: Any = base
    for part in parts:
        if isinstance(node, list):
            if isinstance(part, str):
                names = [item.get("name") if isinstance(item, dict) else None for item in node]
                if part not in names:
                    raise ValueError(f"{format_loc(tuple(loc))} has no entry named {part!r}")
                part = names.index(part)
            assert isinstance(part, int)
            if not 0 <= part < len(node):
                raise ValueError(f"{format_loc(tuple(loc))} has {len(node)} entries: there is no [{part}]")
            node = node[part]
        elif isinstance(node, dict) or node is None:
            if isinstance(part, int):
                raise ValueError(f"{format_loc(tuple(loc))} is not a list: [{part}] does not apply")
            node = None if node is None else node.get(part)
        else:
            raise ValueError(f"{format_loc(tuple(loc))} is a value, not an object: .{part} does not apply")
        loc.append(part)
    return tuple(loc)


def with_values(base: dict[str, Any], locs: Sequence[Loc], values: Sequence[Any]) -> dict[str, Any]:
    """``base`` with each ``loc`` (resolved by ``resolve``) set to its value, objects missing on
    the way made. Only the objects on the way are copied; the rest, the values included, is
    shared with ``base`` and the axes (nothing downstream changes a request's data): a deep copy
    per point took seconds for a sweep of large tensors."""
    request = dict(base)
    for loc, value in zip(locs, values, strict=True):
        node: Any = request
        for part, following in itertools.pairwise(loc):
            child = node.get(part) if isinstance(node, dict) else node[part]
            child = ([] if isinstance(following, int) else {}) if child is None else copy.copy(child)
            node[part] = child
            node = child
        node[loc[-1]] = value
    return request


def point_values(sweep: SweepRequest) -> list[tuple[Any, ...]]:
    """Each point's values, one per axis: the grid with the first axis slowest, or the zip."""
    return _combined([axis.values for axis in sweep.axes], sweep.mode)


def _combined(columns: list[list[Any]], mode: str) -> list[tuple[Any, ...]]:
    if mode == "zip":
        return list(zip(*columns, strict=True))
    return list(itertools.product(*columns))


CELL_MAX_BYTES = 200  # an axis value longer than this as JSON shows in a summary as a label


def table_axes(sweep: SweepRequest) -> dict[str, Any]:
    """What a summary table needs of a sweep, small enough to keep beside it and read at every
    summary (re-parsing a 14 MB sweep per summary held the API's event loop): the axes' paths,
    the mode, and each axis value as its table cell (a long value as a label naming it)."""
    cells = []
    for index, axis in enumerate(sweep.axes):
        column = []
        for position, (value, size) in enumerate(zip(axis.values, axis.value_bytes, strict=True)):
            column.append(value if size <= CELL_MAX_BYTES else f"axes[{index}].values[{position}] ({size:,} bytes)")
        cells.append(column)
    return {"paths": [axis.path for axis in sweep.axes], "mode": sweep.mode, "cells": cells}


def parse_sweep(data: Any, limits: Limits | None = None) -> tuple[SweepRequest, list[Point]]:
    """The sweep and its points, every point validated as a job and the sweep's total cost
    checked; InvalidRequest naming the axis, the value and the field it lands in, or the limit."""
    limits = limits or Limits()
    if isinstance(data, (str, bytes, bytearray)):
        data = loads_strict(data)
    try:
        sweep = SweepRequest.model_validate(data)
    except ValidationError as error:
        raise InvalidRequest(
            [FieldError(clean_loc(e["loc"]), e["msg"], e["type"]) for e in error.errors(include_url=False)]
        ) from None
    locs: list[Loc] = []
    for index, axis in enumerate(sweep.axes):
        try:
            loc = resolve(sweep.base, parse_path(axis.path))
        except ValueError as error:
            raise fail(("axes", index, "path"), str(error)) from None
        if loc in locs:
            raise fail(("axes", index, "path"), f"sets {format_loc(loc)}, as axes[{locs.index(loc)}] does")
        locs.append(loc)
    if sweep.mode == "zip":
        for index, axis in enumerate(sweep.axes[1:], 1):
            if len(axis.values) != len(sweep.axes[0].values):
                raise fail(
                    ("axes", index, "values"),
                    f"has {len(axis.values)} values, axes[0] has {len(sweep.axes[0].values)}: zip takes them pairwise",
                )
    count = 1
    for axis in sweep.axes:
        count = len(axis.values) if sweep.mode == "zip" else count * len(axis.values)
    if count > limits.max_sweep_points:
        raise fail(("axes",), f"make {count} points, over the limit of {limits.max_sweep_points} per sweep", "limit")
    _check_bytes(sweep, count, limits)
    points: list[Point] = []
    found: list[FieldError] = []
    bad_points = 0
    for values in point_values(sweep):
        request = with_values(sweep.base, locs, values)
        try:
            parsed, plan, _ = prepare_request(request, limits)
        except InvalidRequest as error:
            bad_points += 1
            for field_error in error.errors:
                blamed = _blame(sweep, locs, values, field_error)
                if blamed not in found and len(found) < MAX_ERRORS:
                    found.append(blamed)
            continue
        points.append(Point(values, request, parsed, plan))
    if found:
        if bad_points > 1:
            found.append(FieldError(("axes",), f"{bad_points} of {count} points are invalid", "sweep_points"))
        raise InvalidRequest(found)
    _check_total_cost(points, limits)
    return sweep, points


def _check_bytes(sweep: SweepRequest, count: int, limits: Limits) -> None:
    """The points' requests together, each the base with its axes' values (an upper bound: a
    value replaces what the base held there), before any point is made: 8 base64 tensors on the
    axes of a 144-byte base made 130 MiB of points that a check of the base alone let through."""
    base_bytes = len(json.dumps(sweep.base, separators=(",", ":")))
    axes_bytes = 0
    for axis in sweep.axes:
        values = sum(axis.value_bytes)
        axes_bytes += values if sweep.mode == "zip" else values * (count // len(axis.values))
    total = count * base_bytes + axes_bytes
    if total > limits.max_sweep_bytes:
        blamed = ("axes",) if axes_bytes > count * base_bytes else ("base",)
        raise fail(
            blamed,
            f"the {count} points' requests are {total:,} bytes together ({count} x the {base_bytes:,}-byte base, "
            f"and {axes_bytes:,} bytes of axis values set in them), over the limit of {limits.max_sweep_bytes:,} for a sweep",
            "limit",
        )


def _check_total_cost(points: list[Point], limits: Limits) -> None:
    """The points' work together (each point's result is bounded like any job's)."""
    total = sum(point.plan.cost.synaptic_ops for point in points if point.plan.cost)
    if total > limits.max_sweep_synaptic_ops:
        limit = limits.max_sweep_synaptic_ops
        message = f"the {len(points)} points need {total} synaptic operations together, over the limit of {limit}"
        raise fail(("axes",), message, "limit")


def _blame(sweep: SweepRequest, locs: list[Loc], values: tuple[Any, ...], error: FieldError) -> FieldError:
    """A point's error as the sweep's: at the axis value whose field it is in (or contains), else
    at the base, with the point's values."""
    for index, loc in enumerate(locs):
        if error.loc[: len(loc)] == loc or loc[: len(error.loc)] == error.loc:
            value = values[index]
            position = next(j for j, candidate in enumerate(sweep.axes[index].values) if candidate == value)
            where = f"{error.path}: " if error.loc else ""
            return FieldError(("axes", index, "values", position), f"{json.dumps(value)} lands in {where}{error.msg}", error.type)
    point = ", ".join(f"{axis.path}={json.dumps(value)}" for axis, value in zip(sweep.axes, values, strict=True))
    return FieldError(("base", *error.loc), f"{error.msg} (at the point {point})", error.type)


# --- points that run as the entries of one batch (worker.simulation.batched) ---------------------

# neuron layers whose parameters may differ per batch entry: the models built from a parameter set
# alone (the registry's ``batches``)
BATCHABLE_NEURON_TYPES = tuple(name for name, model in MODELS.items() if model.batches)
MAX_GROUP_POINTS = 64
BATCH_BELOW_S = 0.1  # points estimated to run shorter than this are batched ...
GROUP_TARGET_S = 1.0  # ... into groups of about this much estimated work, so that workers still share a sweep
STATIC_PARAMS = ("method", "reset_method", "synapse")  # strings: one kernel choice per layer, never per entry


# weights drawn from the seed when a layer leaves them out (PyTorch's or Norse's initialisation)
DRAWN_WHEN_OMITTED = {
    "linear": ("weight", "bias"),
    "conv1d": ("weight", "bias"),
    "conv2d": ("weight", "bias"),
    "lif_recurrent": ("input_weights", "recurrent_weights"),
}


def _fixed_weights(base: dict[str, Any]) -> bool:
    """No weight or bias of ``base`` is drawn from its seed."""
    for layer in base.get("network", {}).get("layers", []):
        if any(layer.get(key) is None for key in DRAWN_WHEN_OMITTED.get(layer.get("type"), ())):
            return False
        for value in layer.values():
            if isinstance(value, dict) and value.get("init") in ("normal", "uniform"):
                return False
    return True


def _batchable_axis(base: dict[str, Any], loc: tuple[Any, ...], values: Sequence[Any]) -> bool:
    if loc == ("seed",):
        return _fixed_weights(base)
    if loc == ("input", "rates"):
        return base.get("input", {}).get("type") == "poisson"
    if len(loc) == 5 and loc[:2] == ("network", "layers") and loc[3] == "params":
        layer = base["network"]["layers"][loc[2]]
        numeric = all(not isinstance(value, (str, bool, dict)) and value is not None for value in values)
        return layer.get("type") in BATCHABLE_NEURON_TYPES and loc[4] not in STATIC_PARAMS and numeric
    return False


def point_groups(sweep: SweepRequest, points: Sequence[Point]) -> list[list[int]]:
    """The points' indices in groups that run as one batched simulation each (a group of one runs
    as a job of its own): consecutive points, when every axis is one a batch entry can differ in,
    a point is short, and the points share their chunks."""
    singles = [[index] for index in range(len(points))]
    base = sweep.base
    if len(points) < 2 or points[0].parsed.batch is not None or points[0].parsed.record.live:
        return singles
    if points[0].plan.graph is not None:  # graphs run one point at a time
        return singles
    for axis in sweep.axes:
        if not _batchable_axis(base, resolve(base, parse_path(axis.path)), axis.values):
            return singles
    costs = [point.plan.cost for point in points]
    if any(cost is None for cost in costs) or len({cost.chunk_steps for cost in costs if cost}) != 1:
        return singles
    seconds = max(cost.step_seconds * cost.steps for cost in costs if cost)
    if seconds >= BATCH_BELOW_S:
        return singles
    size = max(1, min(MAX_GROUP_POINTS, int(GROUP_TARGET_S / max(seconds, 1e-9))))
    return [list(range(start, min(len(points), start + size))) for start in range(0, len(points), size)]


def summary_table(axes: dict[str, Any], outcomes: Sequence[Outcome]) -> tuple[list[str], list[list[Any]]]:
    """One row per point: its index, job id, state, axis values (``table_axes``' cells), wall
    time, then spikes and mean rate (Hz per neuron) of every recorded layer, and the error of a
    point that failed."""
    layers = list(dict.fromkeys(name for outcome in outcomes for name in outcome.layers or {}))
    figures = ("spikes", "rate_hz")
    columns = ["point", "job_id", "status", *axes["paths"], "wall_s"]
    columns += [f"{layer}.{figure}" for layer in layers for figure in figures] + ["error"]
    rows = []
    for index, (outcome, values) in enumerate(zip(outcomes, _combined(axes["cells"], axes["mode"]), strict=True)):
        measured = outcome.layers or {}
        cells = [measured.get(layer, {}).get(figure) for layer in layers for figure in figures]
        rows.append([index, outcome.job_id, outcome.status, *values, outcome.wall_s, *cells, outcome.error])
    return columns, rows


def table_bytes(columns: list[str], rows: list[list[Any]], fmt: Literal["json", "csv", "npz"]) -> bytes:
    """A summary table as JSON (``columns`` and ``rows``), RFC 4180 CSV (lists and objects as
    JSON), or NPZ: one array per column, float64 where every value is a number (NaN for none),
    else text."""
    if fmt == "json":
        return json.dumps({"columns": columns, "rows": rows}, separators=(",", ":")).encode()
    if fmt == "csv":
        out = io.StringIO()
        write_csv(out, columns, rows)
        return out.getvalue().encode()
    arrays = {}
    for position, name in enumerate(columns):
        values = [row[position] for row in rows]
        if all(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)) for value in values):
            arrays[name] = np.asarray([math.nan if value is None else value for value in values], dtype=np.float64)
        else:
            arrays[name] = np.asarray([str(table_cell(value)) for value in values])
    return write_npz(arrays)
