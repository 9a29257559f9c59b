"""The cost model: its figures follow the documented formulas, and its worst cases really bound
what a run produces."""

from typing import Any

import pytest

from worker.simulation.limits import Limits
from worker.simulation.plan import parse_request
from worker.simulation.plans import EVENT_BYTES, FLOAT_BYTES
from worker.simulation.runner import simulate

CONV = {
    "network": {
        "layers": [
            {"type": "conv2d", "name": "c", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1, "stride": 2},
            {"type": "lif", "name": "n"},
            {"type": "avgpool2d", "name": "p", "kernel_size": 2},
            {"type": "flatten", "name": "f"},
            {"type": "linear", "name": "fc", "in_features": 16, "out_features": 3},
            {"type": "lif_recurrent", "name": "r", "in_features": 3, "out_features": 7},
        ]
    },
    "input": {"type": "constant", "value": 1.0, "shape": [2, 8, 8], "steps": 20},
    "batch": 5,
    "record": {"spikes": ["n", "r"], "voltages": ["r"]},
}


def cost_of(request: dict[str, Any], limits: Limits | None = None) -> Any:
    _, plan = parse_request(request, limits)
    return plan.cost


def test_figures_follow_the_formulas_layer_by_layer() -> None:
    cost = cost_of(CONV)
    by_name = {layer.name: layer for layer in cost.layers}
    assert by_name["c"].ops == 4 * (4 * 4) * 2 * 9  # out channels x output positions x in channels x kernel
    assert by_name["c"].workspace_bytes == (2 * 10 * 10 + 2 * 9 * 16) * FLOAT_BYTES  # padded + unfolded input
    assert by_name["p"].ops == 4 * 2 * 2 * 4
    assert by_name["fc"].ops == 16 * 3
    assert by_name["r"].ops == 7 * (3 + 7)
    assert by_name["n"].activation_bytes == 64 * 1  # spikes as bool, voltages not recorded
    assert by_name["r"].activation_bytes == 7 * (1 + 3 * FLOAT_BYTES)  # spikes and every step's z, v, i
    per_step = sum(layer.ops for layer in cost.layers)
    assert cost.step_ops == per_step * 5 and cost.synaptic_ops == per_step * 5 * 20
    assert cost.neuron_steps == (64 + 7) * 5 * 20
    assert cost.spike_event_bound == (64 + 7) * 5 * 20
    assert cost.voltage_values == 7 * 5 * 20


def test_layers_stepped_from_python_are_counted_one_by_one() -> None:
    """Recurrent layers and box LIFs with delta synapses run their step loop in Python (the
    refractory box LIF has a kernel for either synapse); each such layer adds its overhead to a
    step's estimate (two delta layers are two)."""
    delta = {"type": "lifbox", "params": {"synapse": "delta"}}
    request = {
        "network": {"layers": [{**delta, "name": "a"}, {"type": "lifbox", "name": "b"}, {**delta, "name": "c"}]},
        "input": {"type": "constant", "value": 1.0, "shape": [4], "steps": 10},
    }
    assert [layer.stepped for layer in cost_of(request).layers] == [True, False, True]
    refractory = {"type": "lifbox_refrac", "params": {"synapse": "delta"}}
    request["network"]["layers"][1] = refractory
    assert [layer.stepped for layer in cost_of(request).layers] == [True, False, True]
    assert [layer.stepped for layer in cost_of(CONV).layers] == [False] * 5 + [True]


def test_without_an_explicit_limit_spike_events_take_what_fits_beside_the_rest() -> None:
    limits = Limits(max_record_bytes=100_000, max_result_bytes=500 * 2**20)
    cost = cost_of(CONV, limits)
    fixed = cost.voltage_values * FLOAT_BYTES + cost.count_values * 8
    assert cost.max_spike_events == (100_000 - fixed) // EVENT_BYTES < cost.spike_event_bound
    assert cost.record_bytes <= 100_000
    explicit = cost_of({**CONV, "record": {**CONV["record"], "max_spike_events": 17}}, limits)
    assert explicit.spike_events == 17


def test_the_worst_case_bounds_what_a_saturated_run_encodes() -> None:
    # every neuron spikes on every step: the spike bound is reached exactly
    request = {
        "network": {"layers": [{"type": "lif", "name": "n", "params": {"v_th": 0.01, "tau_syn_inv": 1000.0}}]},
        "input": {"type": "constant", "value": 1000.0, "shape": [37], "steps": 120},
        "batch": 3,
        "record": {"voltages": ["n"]},
    }
    parsed, plan = parse_request(request)
    result = simulate(parsed, plan)
    assert result.layers["n"].spike_count == plan.cost.spike_event_bound == 37 * 3 * 120
    assert len(result.to_json()) <= plan.cost.result_json_bytes
    assert len(result.to_npz()) <= plan.cost.result_npz_bytes
    layer = result.layers["n"]
    kept = sum(getattr(layer, key).nbytes for key in ("times", "senders", "batch", "counts", "voltages"))
    assert kept <= plan.cost.record_bytes


@pytest.mark.parametrize("batch", [1, 64])
def test_chunks_fit_the_memory_budget(batch: int) -> None:
    cost = cost_of({**CONV, "batch": batch, "input": {**CONV["input"], "steps": 5000}})
    assert cost.chunk_steps * cost.step_bytes <= 256 * 2**20
    assert 1 <= cost.chunk_steps <= 1000
