"""Sweeps: axes set places in a base request; every point is validated as a job before any runs,
and an error names the axis, the value and the field it lands in."""

import base64
import copy
import io
import json
import math

import numpy as np
import pytest

from worker.simulation.errors import InvalidRequest
from worker.simulation.limits import Limits
from worker.simulation.sweep import Outcome, SweepRequest, parse_path, parse_sweep, summary_table, table_axes, table_bytes

BASE = {
    "network": {
        "layers": [
            {
                "type": "linear",
                "name": "fc",
                "in_features": 3,
                "out_features": 4,
                "weight": {"init": "uniform", "low": 0, "high": 1},
            },
            {"type": "lif", "name": "out"},
        ]
    },
    "input": {"type": "poisson", "rates": 100.0, "shape": [3], "steps": 50},
}


def sweep(*axes: tuple[str, list], mode: str = "grid", base: dict | None = None) -> dict:
    return {"base": base or BASE, "axes": [{"path": path, "values": values} for path, values in axes], "mode": mode}


def errors_of(body: dict, limits: Limits | None = None) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as caught:
        parse_sweep(body, limits)
    return [(error.path, error.msg) for error in caught.value.errors]


def test_paths_read_like_error_locations() -> None:
    assert parse_path("network.layers[1].params.v_th") == ["network", "layers", 1, "params", "v_th"]
    assert parse_path("network.layers[out].params.v_th") == ["network", "layers", "out", "params", "v_th"]
    assert parse_path("seed") == ["seed"]
    with pytest.raises(ValueError, match="not a field name"):
        parse_path("network..layers")


def test_a_grid_makes_every_combination_with_the_first_axis_slowest() -> None:
    _, points = parse_sweep(sweep(("network.layers[out].params.v_th", [0.5, 1.0]), ("seed", [0, 1, 2])))
    assert [point.values for point in points] == [(0.5, 0), (0.5, 1), (0.5, 2), (1.0, 0), (1.0, 1), (1.0, 2)]
    first = points[0].request
    assert first["network"]["layers"][1]["params"] == {"v_th": 0.5}, "the missing params object is made"
    assert first["seed"] == 0 and points[5].parsed.seed == 2
    assert "params" not in BASE["network"]["layers"][1], "the base is never changed"


def test_axes_into_one_object_each_set_their_field_in_every_point_alone() -> None:
    """Points share what the axes do not set with the base (copying it per point took seconds
    for large tensors): the objects on an axis's way are each point's own."""
    base = copy.deepcopy(BASE)
    base["network"]["layers"][1]["params"] = {"v_th": 0.5, "tau_mem_inv": 100.0}
    _, points = parse_sweep(
        sweep(
            ("network.layers[out].params.v_th", [0.25, 0.75]), ("network.layers[out].params.tau_mem_inv", [50.0, 80.0]), base=base
        )
    )
    assert [point.request["network"]["layers"][1]["params"] for point in points] == [
        {"v_th": 0.25, "tau_mem_inv": 50.0},
        {"v_th": 0.25, "tau_mem_inv": 80.0},
        {"v_th": 0.75, "tau_mem_inv": 50.0},
        {"v_th": 0.75, "tau_mem_inv": 80.0},
    ]
    assert [point.parsed.network.layers[1].params.v_th for point in points] == [0.25, 0.25, 0.75, 0.75]
    assert base["network"]["layers"][1]["params"] == {"v_th": 0.5, "tau_mem_inv": 100.0}, "the base is never changed"


def test_zip_takes_the_values_pairwise_and_needs_equal_lengths() -> None:
    _, points = parse_sweep(sweep(("input.rates", [10.0, 20.0]), ("seed", [3, 4]), mode="zip"))
    assert [point.values for point in points] == [(10.0, 3), (20.0, 4)]
    assert errors_of(sweep(("input.rates", [10.0, 20.0]), ("seed", [3, 4, 5]), mode="zip")) == [
        ("axes[1].values", "has 3 values, axes[0] has 2: zip takes them pairwise")
    ]


def test_a_bad_value_names_the_axis_the_value_and_the_field() -> None:
    errors = errors_of(sweep(("seed", [0, 1]), ("network.layers[1].params.tau_mem_inv", [50.0, -1.0, "fast"])))
    assert errors[0] == ("axes[1].values[1]", "-1.0 lands in network.layers[1].params.tau_mem_inv: must be positive")
    assert errors[1][0] == "axes[1].values[2]" and errors[1][1].startswith('"fast" lands in network.layers[1].params.tau_mem_inv')
    assert errors[-1] == ("axes", "4 of 6 points are invalid")


def test_a_path_that_does_not_exist_in_the_base_is_refused() -> None:
    assert errors_of(sweep(("network.layers[5].params.v_th", [1.0]))) == [
        ("axes[0].path", "network.layers has 2 entries: there is no [5]")
    ]
    assert errors_of(sweep(("network.layers[hidden].params.v_th", [1.0]))) == [
        ("axes[0].path", "network.layers has no entry named 'hidden'")
    ]
    assert errors_of(sweep(("input.rates.value", [1]))) == [
        ("axes[0].path", "input.rates is a value, not an object: .value does not apply")
    ]
    assert errors_of(sweep(("seed", [1]), ("seed", [2]))) == [("axes[1].path", "sets seed, as axes[0] does")]


def test_an_error_outside_the_axes_is_reported_at_the_base_with_the_point() -> None:
    bad_base = copy.deepcopy(BASE)
    bad_base["input"]["shape"] = [5]  # does not fit the linear layer
    (path, message), *_ = errors_of(sweep(("seed", [7]), base=bad_base))
    assert path.startswith("base.") and message.endswith("(at the point seed=7)")


def test_points_and_cost_are_bounded_for_the_sweep_as_a_whole() -> None:
    assert errors_of(sweep(("seed", list(range(30))), ("input.rates", [1.0, 2.0])), Limits(max_sweep_points=50)) == [
        ("axes", "make 60 points, over the limit of 50 per sweep")
    ]
    base_bytes = len(json.dumps(BASE, separators=(",", ":")))
    (path, message), *_ = errors_of(sweep(("seed", list(range(10)))), Limits(max_sweep_bytes=9 * base_bytes))
    assert path == "base" and "over the limit" in message
    tensors = [{"dtype": "float32", "shape": [1000], "base64": base64.b64encode(bytes(4000)).decode()} for _ in range(8)]
    (path, message), *_ = errors_of(sweep(("input.rates", tensors), ("seed", list(range(10)))), Limits(max_sweep_bytes=2**18))
    assert path == "axes" and "and 430,640 bytes of axis values set in them), over the limit of 262,144" in message
    (path, message), *_ = errors_of(sweep(("seed", list(range(10)))), Limits(max_sweep_synaptic_ops=10 * 3 * 4 * 50 - 1))
    assert path == "axes" and message.startswith("the 10 points need 6000 synaptic operations together")


def test_unknown_fields_and_modes_are_refused() -> None:
    errors = errors_of({**sweep(("seed", [1])), "mode": "spiral", "extra": 1})
    assert {path for path, _ in errors} == {"mode", "extra"}


def test_the_summary_table_has_a_row_per_point_and_columns_per_axis_and_layer() -> None:
    parsed, _ = parse_sweep(sweep(("input.rates", [10.0, [1.0, 2.0, 3.0]]), ("seed", [1])))
    outcomes = [
        Outcome("a", "succeeded", 0.5, {"out": {"spikes": 3, "rate_hz": 15.0}}),
        Outcome("b", "failed", error="boom"),
    ]
    columns, rows = summary_table(table_axes(parsed), outcomes)
    assert columns == ["point", "job_id", "status", "input.rates", "seed", "wall_s", "out.spikes", "out.rate_hz", "error"]
    assert rows == [
        [0, "a", "succeeded", 10.0, 1, 0.5, 3, 15.0, None],
        [1, "b", "failed", [1.0, 2.0, 3.0], 1, None, None, None, "boom"],
    ]
    assert json.loads(table_bytes(columns, rows, "json")) == {"columns": columns, "rows": rows}
    csv_lines = table_bytes(columns, rows, "csv").decode().splitlines()
    assert csv_lines[2] == '1,b,failed,"[1.0, 2.0, 3.0]",1,,,,boom'
    npz = np.load(io.BytesIO(table_bytes(columns, rows, "npz")), allow_pickle=False)
    assert npz["out.spikes"][0] == 3 and math.isnan(npz["out.spikes"][1])
    assert npz["input.rates"].tolist() == ["10.0", "[1.0, 2.0, 3.0]"] and npz["status"].tolist() == ["succeeded", "failed"]


def test_long_axis_values_show_in_the_summary_as_labels_naming_them() -> None:
    long_rates = [float(i) for i in range(3)] * 30
    axes = table_axes(SweepRequest.model_validate(sweep(("input.rates", [10.0, long_rates]))))
    assert axes["cells"] == [[10.0, f"axes[0].values[1] ({len(json.dumps(long_rates, separators=(',', ':'))):,} bytes)"]]
    assert len(json.dumps(axes)) < 200
