"""The runner: runs are deterministic, chunks come from the request, event-driven layers do not
depend on the chunking at all, progress and cancel happen between chunks, and what is recorded
is exactly what the engine computed."""

import copy
import json
import pathlib
from typing import Any

import numpy as np
import pytest
import torch

import worker.engine as snn
from tests.helpers import assert_same_recordings
from worker.engine import synapses
from worker.engine_options import ENGINE
from worker.simulation import plans, results
from worker.simulation.build import InputStream, build_network
from worker.simulation.errors import InvalidRequest
from worker.simulation.limits import Limits
from worker.simulation.plan import parse_request
from worker.simulation.results import LiveChunk, Result
from worker.simulation.runner import Cancelled, SimulationError, TimeLimitExceeded, default_chunk, simulate

EXAMPLES = pathlib.Path(__file__).parents[3] / "examples"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def run(request: dict[str, Any], **kwargs: Any) -> Result:
    parsed, plan = parse_request(request)
    return simulate(parsed, plan, **kwargs)


MIXED = {
    "network": {
        "layers": [
            {
                "type": "linear",
                "name": "fc",
                "in_features": 6,
                "out_features": 8,
                "weight": {"init": "normal", "mean": 0.4, "std": 0.3},
            },
            {"type": "alif", "name": "adaptive"},
            {
                "type": "lif_recurrent",
                "name": "rec",
                "in_features": 8,
                "out_features": 5,
                "input_weights": {"init": "normal", "mean": 1.5, "std": 0.5},
            },
            {"type": "linear", "name": "ro", "in_features": 5, "out_features": 2},
            {"type": "li", "name": "readout"},
        ]
    },
    "input": {"type": "poisson", "rates": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0], "steps": 157},
    "batch": 3,
    "record": {"spikes": ["adaptive", "rec"], "voltages": ["adaptive", "readout"], "neurons": {"adaptive": [0, 7]}},
    "seed": 5,
}


@pytest.fixture
def always_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Synaptic layers take the event path whatever the activity."""
    for layer in (synapses.Linear, synapses.Conv, synapses.AvgPool2d):
        monkeypatch.setattr(layer, "crossover", 1.0)


@pytest.mark.usefixtures("always_events")
@pytest.mark.parametrize("name", ["poisson_population", "izhikevich_tonic_bursting", "MIXED"])
def test_spike_driven_networks_do_not_depend_on_the_chunking(name: str) -> None:
    """Batches, recurrence, adaptation and voltage subsets included: with every synaptic layer on
    the event path, a row's sum does not depend on the rows around it."""
    request = MIXED if name == "MIXED" else example(name)
    whole = run(request, chunk_steps=10**6)
    assert sum(layer.spike_count for layer in whole.layers.values() if layer.times is not None) > 0
    for chunk in (1, 13, 64):
        assert_same_recordings(run(request, chunk_steps=chunk), whole)


REFRACTORY = {  # strongly driven neurons that would fire almost every step without a refractory period
    "network": {
        "layers": [
            {"type": "linear", "name": "fc", "in_features": 4, "out_features": 6, "weight": {"init": "normal", "mean": 3.0}},
            {"type": "lif_refrac", "name": "refrac", "params": {"rho_reset": 3.0, "v_reset": -0.25}},
        ]
    },
    "input": {"type": "poisson", "rates": 400.0, "shape": [4], "steps": 300},
    "record": {"voltages": ["refrac"]},
    "seed": 2,
}


def test_a_refractory_layer_holds_its_neurons_for_rho_reset_steps_whatever_the_chunks() -> None:
    whole = run(REFRACTORY, chunk_steps=10**6)
    for chunk in (1, 7, 64):  # the refractory counter is carried from chunk to chunk
        assert_same_recordings(run(REFRACTORY, chunk_steps=chunk), whole)
    layer = whole.layers["refrac"]
    assert layer.times is not None and layer.voltages is not None and layer.times.size > 100
    for neuron in range(6):
        spikes = layer.times[layer.senders == neuron]
        assert np.diff(spikes).min() == 4, "3 refractory steps between spikes, and the drive fires it at once after"
        for step in spikes[spikes < 296]:
            assert np.all(layer.voltages[step : step + 4, neuron] == np.float32(-0.25)), "held at v_reset"


def test_a_negative_refractory_period_is_refused() -> None:
    request = copy.deepcopy(REFRACTORY)
    request["network"]["layers"][1]["params"]["rho_reset"] = -1.0
    with pytest.raises(InvalidRequest) as refused:
        parse_request(request)
    assert refused.value.errors[0].loc == ("network", "layers", 1, "params", "rho_reset")


def test_the_chunks_come_from_the_request_alone() -> None:
    """The same request is cut into the same chunks by the service, the CLI and a rerun: progress
    arrives at multiples of the plan's chunk."""
    request = copy.deepcopy(MIXED)
    request["input"]["steps"] = 2500
    _, plan = parse_request(request)
    assert plan.cost is not None and plan.cost.chunk_steps < 2500
    calls: list[int] = []
    run(request, progress=lambda done, total: calls.append(done))
    chunk = plan.cost.chunk_steps
    assert calls == [*range(chunk, 2500, chunk), 2500]


@pytest.mark.parametrize("name", ["seed", "conv_feedforward", "MIXED"])
def test_a_cancelled_run_reruns_to_the_same_bits(name: str) -> None:
    """Dense float input included (one GEMM per chunk): a run cancelled part way and run again
    equals one that was never interrupted."""
    request = MIXED if name == "MIXED" else example(name)
    with pytest.raises(Cancelled):
        run(request, is_cancelled=lambda: True)
    assert_same_recordings(run(request), run(request))


def test_same_request_and_seed_give_identical_results_and_another_seed_does_not() -> None:
    first, second = run(MIXED), run(MIXED)
    assert_same_recordings(first, second)
    other = run({**MIXED, "seed": 6})
    assert not np.array_equal(other.layers["adaptive"].times, first.layers["adaptive"].times)


def direct_engine_run(request: dict[str, Any]) -> tuple[list[torch.Tensor], list[Any]]:
    """The same modules called directly on the whole input, with no runner in between."""
    parsed, plan = parse_request(request)
    network = build_network(parsed, plan, record_states=frozenset(plan.record_voltages))
    x = InputStream.of(parsed, plan, torch.device("cpu")).chunk(0, plan.steps)
    with torch.no_grad():
        return network(x)


@pytest.mark.parametrize("name", ["seed", "poisson_population", "conv_feedforward", "izhikevich_tonic_bursting"])
def test_results_equal_a_direct_engine_call(name: str) -> None:
    request = example(name)
    parsed, plan = parse_request(request)
    result = simulate(parsed, plan)
    outputs, states = direct_engine_run(request)
    for index, layer in enumerate(plan.layers):
        if layer.name in plan.record_spikes:
            z = outputs[index]
            recorded = result.layers[layer.name]
            dense = np.zeros((plan.steps, 1, layer.neurons), dtype=np.float32)
            dense[recorded.times, recorded.batch, recorded.senders] = 1
            assert np.array_equal(dense, z.reshape(plan.steps, 1, -1).numpy()), layer.name
            assert np.array_equal(recorded.counts, z.reshape(plan.steps, -1).sum(0).numpy().astype(np.int64))
        if layer.name in plan.record_voltages:
            v = states[index].v.reshape(plan.steps, -1).numpy()
            kept = plan.record_voltages[layer.name]
            assert np.array_equal(result.layers[layer.name].voltages, v if kept is None else v[:, kept]), layer.name


def test_seed_example_is_the_walkthrough() -> None:
    """examples/seed.json holds the walkthrough's tensors; the runner reproduces its output.

    Spikes must be identical. Voltages agree to float32 rounding only: both apply the Linear to
    all 4 rows at once, but PyTorch's Linear multiplies by the transposed (out, in) weight and the
    runner by its input-major copy, and BLAS may round those two differently in the last bit.
    """
    torch.manual_seed(0)
    data = torch.randn(5)
    torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.ReLU())(data)
    data = torch.randn(4, 5)
    network = snn.SequentialState(torch.nn.Linear(5, 1), snn.LIF(record_states=True))
    output, state = network(data)
    request = example("seed")
    assert np.array_equal(np.asarray(request["input"]["data"], np.float32), data.numpy())
    assert np.array_equal(np.asarray(request["network"]["layers"][0]["weight"], np.float32), network[0].weight.detach().numpy())
    result = run(request)
    out = result.layers["out"]
    assert out.spike_count == 0 and output.sum() == 0 and out.counts.tolist() == [0]
    strong = copy.deepcopy(request)  # and with an input that does spike, the same spike times
    strong["input"]["data"] = (np.asarray(request["input"]["data"]) * 40).tolist()
    strong_output, _ = network(torch.tensor(strong["input"]["data"], dtype=torch.float32))
    strong_result = run(strong).layers["out"]
    assert strong_result.spike_count > 0
    assert strong_result.times.tolist() == strong_output[:, 0].nonzero().flatten().tolist()
    np.testing.assert_allclose(out.voltages, state[1].v.detach().numpy(), rtol=0, atol=1e-6)


def test_progress_is_reported_after_every_chunk() -> None:
    calls: list[tuple[int, int]] = []
    run(MIXED, chunk_steps=50, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(50, 157), (100, 157), (150, 157), (157, 157)]


def test_cancel_is_checked_before_every_chunk() -> None:
    checks: list[int] = []

    def cancel_on_third() -> bool:
        checks.append(1)
        return len(checks) == 3

    progress: list[int] = []
    with pytest.raises(Cancelled, match="after 100 of 157 steps"):
        run(MIXED, chunk_steps=50, is_cancelled=cancel_on_third, progress=lambda done, total: progress.append(done))
    assert progress == [50, 100]


def test_only_requested_layers_and_neurons_are_recorded() -> None:
    result = run(MIXED)
    assert set(result.layers) == {"adaptive", "rec", "readout"}
    assert result.layers["adaptive"].voltages.shape == (157, 3, 2)
    assert result.layers["adaptive"].voltage_neurons.tolist() == [0, 7]
    assert result.layers["readout"].times is None and result.layers["readout"].voltages.shape == (157, 3, 2)
    assert result.layers["rec"].voltages is None and result.layers["rec"].counts.shape == (3, 5)


def test_events_are_sorted_and_counts_agree_with_them() -> None:
    layer = run(MIXED).layers["rec"]
    assert np.all(np.diff(layer.times) >= 0)
    counts = np.zeros((3, 5), dtype=np.int64)
    np.add.at(counts, (layer.batch, layer.senders), 1)
    assert np.array_equal(counts, layer.counts)


def test_spike_event_input_drives_the_named_neurons_at_the_named_steps() -> None:
    request = {
        "network": {"layers": [{"type": "iaf", "name": "relay", "params": {"v_th": 0.5}}]},
        "input": {
            "type": "spikes",
            "times": [3, 0, 9, 9],
            "indices": [1, 2, 0, 0],
            "batch": [0, 1, 1, 1],
            "size": 3,
            "steps": 12,
        },
        "batch": 2,
    }
    layer = run(request, chunk_steps=4).layers["relay"]
    assert list(zip(layer.times.tolist(), layer.batch.tolist(), layer.senders.tolist(), strict=True)) == [
        (0, 1, 2),
        (3, 0, 1),
        (9, 1, 0),
    ]


def test_exploding_dynamics_fail_with_a_clear_error() -> None:
    request = copy.deepcopy(example("izhikevich_tonic_bursting"))
    request["network"]["layers"][0]["params"] = {"sq": 5.0, "v_th": 1e30}
    with pytest.raises(SimulationError, match=r"layer 'neurons' \(izhikevich\) reached a non-finite voltage"):
        run(request)


def test_unavailable_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SimulationError, match="no CUDA device"):
        run(example("seed"), device="cuda")


def test_default_chunk_bounds_activation_memory_and_estimated_time() -> None:
    _, plan = parse_request(example("poisson_population"))
    chunk = default_chunk(plan)
    # input and linear as float32; spikes as bool and the three state fields of every step, since
    # the example records voltages
    per_step = 4 * (200 + 10000) + (1 + 3 * 4) * 10000
    assert plan.cost is not None and plan.cost.step_bytes == per_step
    assert 1 <= chunk <= 1000 and chunk * per_step <= plans.CHUNK_BUDGET_BYTES
    assert chunk * plan.cost.step_seconds <= plans.CHUNK_TARGET_S


def test_the_chunk_is_shorter_for_heavier_steps() -> None:
    light, heavy = copy.deepcopy(MIXED), copy.deepcopy(MIXED)
    light["input"]["steps"] = heavy["input"]["steps"] = 5000
    light["record"] = heavy["record"] = {"spikes": ["adaptive"]}
    heavy["batch"] = 4096
    assert default_chunk(parse_request(heavy, Limits(max_batch=4096, max_result_bytes=500 * 2**20))[1]) < default_chunk(
        parse_request(light)[1]
    )


def test_a_run_over_its_spike_event_limit_fails_at_the_chunk_that_crosses_it() -> None:
    request = {**MIXED, "record": {"spikes": ["adaptive", "rec"], "max_spike_events": 25}}
    full = run({**MIXED, "record": {"spikes": ["adaptive", "rec"]}})
    assert sum(layer.spike_count for layer in full.layers.values()) > 25
    with pytest.raises(SimulationError, match=r"the recorded layers produced more than 25 spike events by step 10 \(layer"):
        run(request, chunk_steps=10)
    limited = run({**request, "record": {**request["record"], "max_spike_events": 10_000}})
    assert_same_recordings(limited, full)


def test_a_run_over_its_time_limit_stops_before_its_next_chunk() -> None:
    progress: list[int] = []
    with pytest.raises(TimeLimitExceeded, match=r"time limit of 0 s exceeded after 0 of 157 steps"):
        run(MIXED, time_limit_s=0, progress=lambda done, total: progress.append(done))
    assert progress == []


def test_spiking_layers_hand_on_bool_spikes_not_float_copies() -> None:
    parsed, plan = parse_request(MIXED)
    network = build_network(parsed, plan)
    with torch.inference_mode():
        outputs, _ = network(InputStream.of(parsed, plan, torch.device("cpu")).chunk(0, 40), None)
    dtypes = {layer.name: outputs[index].dtype for index, layer in enumerate(plan.layers)}
    floats = {"fc": torch.float32, "ro": torch.float32, "readout": torch.float32}
    assert dtypes == {**floats, "adaptive": torch.bool, "rec": torch.bool}


def test_fused_kernels_and_the_eager_engine_record_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    fused = run(MIXED, chunk_steps=50)
    monkeypatch.setattr(ENGINE, "fused", False)
    eager = run(MIXED, chunk_steps=50)
    assert_same_recordings(fused, eager)
    assert fused.layers["adaptive"].times.size > 0


def test_a_chunk_costs_as_many_operator_calls_at_1000_steps_as_at_100(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each layer is one pass per chunk, so the calls (PyTorch operators, as the profiler counts
    them, and the compiled kernels) grow with the layers, not the steps: what keeps a GPU busy."""
    from worker.engine.events import cpu as event_kernels
    from worker.engine.fused import cpu as fused_kernels

    kernel_calls: list[str] = []
    for module in (event_kernels, fused_kernels):
        for name in ("linear", "poisson", "row_starts", "spike_events", "spike_count", "forward"):
            if hasattr(module, name):
                kernel = getattr(module, name)
                monkeypatch.setattr(module, name, lambda *a, _k=kernel, _n=name: kernel_calls.append(_n) or _k(*a))

    def calls(steps: int) -> tuple[dict[str, int], list[str]]:
        request = copy.deepcopy(MIXED)
        request["network"]["layers"] = [
            MIXED["network"]["layers"][0],
            {"type": "lif", "name": "hidden"},
            {"type": "linear", "name": "ro", "in_features": 8, "out_features": 2},
            {"type": "lif", "name": "out"},
        ]
        request["input"]["steps"] = steps
        request["input"]["rates"] = [10.0] * 6
        request["record"] = {"spikes": ["hidden", "out"]}
        parsed, plan = parse_request(request)
        kernel_calls.clear()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            simulate(parsed, plan, chunk_steps=steps)
        operators: dict[str, int] = {}
        for event in profile.events():
            if event.name.startswith("aten::"):
                operators[event.name] = operators.get(event.name, 0) + 1
        return operators, sorted(kernel_calls)

    short, long = calls(100), calls(1000)
    assert short == long
    assert short[1].count("forward") == 2 and "linear" in short[1] and "poisson" in short[1]


def event_and_dense_runs(request: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Result]:
    results = {}
    for path, crossover in (("events", 1.0), ("dense", -1.0)):
        for layer in (synapses.Linear, synapses.Conv, synapses.AvgPool2d):
            monkeypatch.setattr(layer, "crossover", crossover)
        results[path] = run(request)
    return results


@pytest.mark.parametrize("name", ["conv_feedforward", "MIXED"])
def test_event_driven_and_dense_synapses_give_the_same_spikes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two paths differ in the last bit at most; on these networks no spike moves."""
    results = event_and_dense_runs(MIXED if name == "MIXED" else example(name), monkeypatch)
    for layer_name, layer in results["events"].layers.items():
        dense = results["dense"].layers[layer_name]
        if layer.times is not None:
            assert layer.spike_count > 0, layer_name
            for key in ("times", "batch", "senders", "counts"):
                assert np.array_equal(getattr(layer, key), getattr(dense, key)), (layer_name, key)
        if layer.voltages is not None:
            np.testing.assert_allclose(layer.voltages, dense.voltages, rtol=0, atol=1e-5)


def test_on_ten_million_neuron_steps_a_last_bit_moves_a_handful_of_spikes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 10,000-neuron population: the paths' last-bit differences cross the threshold a step
    earlier or later for 9 of 282,527 spikes (measured); at most 0.01% may move."""
    results = event_and_dense_runs(example("poisson_population"), monkeypatch)
    events, dense = (results[path].layers["population"] for path in ("events", "dense"))
    moved = set(zip(events.times, events.senders, strict=True)) ^ set(zip(dense.times, dense.senders, strict=True))
    assert events.spike_count > 100_000 and len(moved) <= 1e-4 * events.spike_count
    np.testing.assert_allclose(events.voltages, dense.voltages, rtol=0, atol=1e-6)


def live_request() -> dict[str, Any]:
    request = copy.deepcopy(MIXED)
    request["record"]["live"] = ["rec", "adaptive"]
    return request


def test_live_chunks_concatenate_to_the_result() -> None:
    chunks: list[LiveChunk] = []
    result = run(live_request(), chunk_steps=50, live=chunks.append)
    assert [(chunk.start, chunk.stop, chunk.steps) for chunk in chunks] == [
        (0, 50, 157),
        (50, 100, 157),
        (100, 150, 157),
        (150, 157, 157),
    ]
    for name in ("rec", "adaptive"):
        layer = result.layers[name]
        assert layer.spike_count > 0, "the test needs spikes to compare"
        for key in ("times", "senders", "batch"):
            joined = np.concatenate([getattr(chunk.layers[name], key) for chunk in chunks])
            assert np.array_equal(joined, getattr(layer, key)), (name, key)
        assert all(chunk.layers[name].every == 1 for chunk in chunks)
        assert sum(chunk.layers[name].count for chunk in chunks) == layer.spike_count
    assert set(chunks[0].layers) == {"rec", "adaptive"}, "only the live layers"


def test_live_chunks_arrive_before_the_progress_of_their_steps() -> None:
    calls: list[tuple[str, int]] = []
    run(
        live_request(),
        chunk_steps=100,
        live=lambda chunk: calls.append(("live", chunk.stop)),
        progress=lambda done, _: calls.append(("progress", done)),
    )
    assert calls == [("live", 100), ("progress", 100), ("live", 157), ("progress", 157)]


def test_a_busy_chunk_is_thinned_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "LIVE_MAX_EVENTS", 7)
    chunks: list[LiveChunk] = []
    result = run(live_request(), live=chunks.append)
    (chunk,) = chunks
    layer, live = result.layers["rec"], chunk.layers["rec"]
    assert live.count == layer.spike_count > 7
    assert live.every == -(-layer.spike_count // 7) and live.times.size <= 7
    assert np.array_equal(live.times, layer.times[:: live.every]) and np.array_equal(live.senders, layer.senders[:: live.every])


def test_live_chunks_survive_their_json_encoding() -> None:
    chunks: list[LiveChunk] = []
    run(live_request(), chunk_steps=100, live=chunks.append)
    for chunk in chunks:
        decoded = LiveChunk.from_dict(json.loads(chunk.to_json()))
        assert (decoded.start, decoded.stop, decoded.steps, decoded.dt) == (chunk.start, chunk.stop, chunk.steps, chunk.dt)
        for name, spikes in chunk.layers.items():
            assert np.array_equal(decoded.layers[name].times, spikes.times) and decoded.layers[name].count == spikes.count
