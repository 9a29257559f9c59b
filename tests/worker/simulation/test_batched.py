"""A sweep's points run as the entries of one batch give, bit for bit, what each gives alone."""

import copy

import numpy as np
import pytest

from tests.helpers import assert_same_recordings
from tests.worker.simulation.test_graph_plan import balanced
from worker.registry import MODELS
from worker.simulation.batched import simulate_points
from worker.simulation.plan import parse_request
from worker.simulation.request import SPECIAL_LAYERS
from worker.simulation.results import Result
from worker.simulation.runner import Cancelled, SimulationError, simulate
from worker.simulation.sweep import BATCHABLE_NEURON_TYPES, parse_sweep, point_groups

BASE = {
    "network": {
        "layers": [
            {
                "type": "linear",
                "name": "fc1",
                "in_features": 30,
                "out_features": 40,
                "weight": {"init": "normal", "mean": 0.2, "std": 0.3},
            },
            {"type": "lif", "name": "hidden"},
            {
                "type": "linear",
                "name": "fc2",
                "in_features": 40,
                "out_features": 10,
                "weight": {"init": "normal", "mean": 0.3, "std": 0.2},
            },
            {"type": "alif", "name": "out"},
        ]
    },
    "input": {"type": "poisson", "rates": 50.0, "shape": [30], "steps": 300},
    "record": {"spikes": ["hidden", "out"], "voltages": ["hidden", "out"], "neurons": {"hidden": [0, 5, 39]}},
    "seed": 11,
}


def alone(point_request: dict) -> Result:
    return simulate(*parse_request(point_request))


def run_batched(body: dict) -> tuple[list, list]:
    _, points = parse_sweep(body)
    results = simulate_points([(p.parsed, p.plan) for p in points], [f"p{i}" for i in range(len(points))])
    return points, results


def test_points_differing_in_rates_and_neuron_parameters_equal_their_runs_alone() -> None:
    # 400 Hz makes about 40% of the inputs active per step: that entry goes dense, the others through events
    body = {"base": BASE, "axes": [
        {"path": "input.rates", "values": [5.0, 60.0, 400.0]},
        {"path": "network.layers[hidden].params.v_th", "values": [0.4, [0.8] * 20 + [1.2] * 20]},
        {"path": "network.layers[3].params.tau_adapt_inv", "values": [0.5, 3.0]},
    ]}  # fmt: skip
    points, results = run_batched(body)
    assert len(points) == 12
    for point, result in zip(points, results, strict=True):
        expected = alone(point.request)
        assert_same_recordings(result, expected)
        assert result.batch is None and result.stats["batched_with"] == 12
    assert len({result.layers["out"].spike_count for result in results}) > 3, "the points differ"


def test_refractory_points_batch_with_their_refractory_periods_per_entry() -> None:
    base = copy.deepcopy(BASE)
    base["network"]["layers"][1] = {"type": "lif_refrac", "name": "hidden", "params": {"v_th": 0.5}}
    base["network"]["layers"][3] = {"type": "lifbox_refrac", "name": "out", "params": {"synapse": "delta", "v_th": 0.6}}
    base["input"]["rates"] = 300.0
    body = {"base": base, "axes": [
        {"path": "network.layers[hidden].params.rho_reset", "values": [0.0, 2.0, 6.0]},
        {"path": "network.layers[out].params.rho_reset", "values": [1.0, 4.0]},
    ]}  # fmt: skip
    points, results = run_batched(body)
    for point, result in zip(points, results, strict=True):
        assert_same_recordings(result, alone(point.request))
        assert result.stats["batched_with"] == 6
    counts = [result.layers["hidden"].spike_count for result in results]
    assert counts[0] > counts[2] > counts[4] > 0, "longer refractory periods, fewer spikes"


def test_seeds_batch_when_no_weight_is_drawn_from_them() -> None:
    fixed = copy.deepcopy(BASE)
    fixed["network"]["layers"][0]["weight"] = np.linspace(-0.2, 0.6, 1200).reshape(40, 30).tolist()
    fixed["network"]["layers"][0]["bias"] = False
    fixed["network"]["layers"][2]["weight"] = {"init": "constant", "value": 0.15}
    fixed["network"]["layers"][2]["bias"] = {"init": "constant", "value": 0.0}
    body = {"base": fixed, "axes": [{"path": "seed", "values": [0, 1, 2, 3]}]}
    sweep, points = parse_sweep(body)
    assert point_groups(sweep, points) == [[0, 1, 2, 3]]
    _, results = run_batched(body)
    for point, result in zip(points, results, strict=True):
        assert_same_recordings(result, alone(point.request))
    assert len({result.layers["hidden"].spike_count for result in results}) > 1


def test_a_sweep_of_a_graph_runs_its_points_one_by_one_through_the_graph() -> None:
    base = balanced()
    sweep, points = parse_sweep({"base": base, "axes": [{"path": "seed", "values": [0, 1, 2]}]})
    assert point_groups(sweep, points) == [[0], [1], [2]]
    sweep, points = parse_sweep({"base": base, "axes": [{"path": "network.nodes[0].params.v_th", "values": [18.0, 22.0]}]})
    assert [point.parsed.network.nodes[0].params.v_th for point in points] == [18.0, 22.0]  # type: ignore[union-attr]


def test_only_axes_a_batch_entry_can_differ_in_are_grouped() -> None:
    def groups(*axes: tuple[str, list], base: dict = BASE) -> list[list[int]]:
        sweep, points = parse_sweep({"base": base, "axes": [{"path": path, "values": values} for path, values in axes]})
        return point_groups(sweep, points)

    assert groups(("input.rates", [1.0, 2.0, 3.0])) == [[0, 1, 2]]
    assert groups(("seed", [0, 1])) == [[0], [1]], "the weights are drawn from the seed"
    assert groups(("network.layers[1].params.method", ["super", "tanh"])) == [[0], [1]], "one kernel per layer"
    assert groups(("network.layers[0].weight", [{"init": "constant", "value": 0.1}, {"init": "constant", "value": 0.2}])) == [
        [0],
        [1],
    ]
    assert groups(("input.steps", [100, 200])) == [[0], [1]]
    long = {**BASE, "input": {**BASE["input"], "shape": [30], "steps": 100_000}}
    long["network"] = {"layers": [{**BASE["network"]["layers"][0], "out_features": 40_000}, {"type": "lif", "name": "hidden"}]}
    long["record"] = {}
    assert groups(("input.rates", [1.0, 2.0]), base=long) == [[0], [1]], "long points run as jobs of their own"


def test_a_point_that_fails_alone_fails_batched_and_the_others_go_on() -> None:
    body = {"base": {**BASE, "record": {**BASE["record"], "max_spike_events": 400}}, "axes": [
        {"path": "input.rates", "values": [2.0, 500.0]},
    ]}  # fmt: skip
    points, results = run_batched(body)
    with pytest.raises(SimulationError) as alone_error:
        alone(points[1].request)
    assert isinstance(results[1], SimulationError) and str(results[1]) == str(alone_error.value)
    assert_same_recordings(results[0], alone(points[0].request))


def test_cancelled_entries_end_cancelled_and_the_rest_finish() -> None:
    _, points = parse_sweep({"base": BASE, "axes": [{"path": "input.rates", "values": [10.0, 20.0, 30.0]}]})
    results = simulate_points([(p.parsed, p.plan) for p in points], ["a", "b", "c"], cancelled=lambda: {1})
    assert isinstance(results[1], Cancelled)
    assert_same_recordings(results[2], alone(points[2].request))


def test_float_input_goes_dense_per_entry_and_still_equals_the_runs_alone() -> None:
    base = copy.deepcopy(BASE)
    base["input"] = {"type": "constant", "value": 0.3, "shape": [30], "steps": 300}
    sweep, points = parse_sweep(
        {"base": base, "axes": [{"path": "network.layers[hidden].params.tau_mem_inv", "values": [50.0, 100.0, 200.0]}]}
    )
    assert point_groups(sweep, points) == [[0, 1, 2]]
    results = simulate_points([(p.parsed, p.plan) for p in points], ["a", "b", "c"])
    for point, result in zip(points, results, strict=True):
        assert_same_recordings(result, alone(point.request))


def test_the_batchable_neuron_types_are_those_built_from_parameters_alone() -> None:
    """build_layer builds them from their parameters alone; the two others need code of their own,
    and a model with channels needs the edges into it."""
    channelled = {name for name, model in MODELS.items() if model.channels}
    assert set(MODELS) - set(BATCHABLE_NEURON_TYPES) == set(SPECIAL_LAYERS) | channelled
