"""Running graph networks: a graph equals the same network written as a chain, recurrence and
delays equal an obvious step-by-step reference, and results do not depend on the chunking."""

import copy
import json
import pathlib
import time
from typing import Any

import numpy as np
import pytest
import torch

import worker.engine as snn
from tests.helpers import assert_same_recordings
from tests.worker.simulation.test_graph_plan import balanced
from worker.engine.module import cast_params
from worker.simulation.graph_runner import GraphRun
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import Cancelled, simulate

EXAMPLES = pathlib.Path(__file__).parents[3] / "examples"


def run(request: dict[str, Any], **kwargs: Any) -> Result:
    parsed, plan = parse_request(request)
    return simulate(parsed, plan, **kwargs)


def sixty_fourths(rng: np.random.Generator, *shape: int) -> list[Any]:
    """Weights that are exact in float32 and whose sums are exact in any order."""
    return (rng.integers(-32, 64, size=shape) / 64).tolist()


def test_a_chain_written_as_a_graph_gives_the_same_spikes_and_voltages() -> None:
    weight = sixty_fourths(np.random.default_rng(3), 8, 6)
    rates = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    chain = {
        "seed": 11,
        "input": {"type": "poisson", "rates": rates, "steps": 300},
        "network": {"layers": [
            {"type": "linear", "in_features": 6, "out_features": 8, "weight": weight, "bias": False},
            {"type": "lif", "name": "out", "params": {"tau_mem_inv": 200.0}},
        ]},
        "record": {"voltages": ["out"]},
    }  # fmt: skip
    graph = {
        **chain,  # its top-level input is the node "input", drawn as a chain's input is
        "network": {
            "nodes": [{"name": "out", "type": "lif", "size": 8, "params": {"tau_mem_inv": 200.0}}],
            "edges": [{"from": "input", "to": "out", "type": "dense", "weight": weight}],
        },
    }
    from_chain, from_graph = run(chain), run(graph)
    assert from_chain.layers["out"].times.size > 100
    assert_same_recordings(from_chain, from_graph)


def recurrent_request(seed: int = 5) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two populations with recurrent sparse edges, per-synapse delays, a dense delayed edge and
    a spike-list drive; and the same network's arrays for the reference."""
    rng = np.random.default_rng(seed)
    ne, ni, steps = 6, 4, 80
    cue_times = rng.integers(0, steps, 60)
    cue_neurons = rng.integers(0, ne, 60)
    ee = {"pre": rng.integers(0, ne, 15).tolist(), "post": rng.integers(0, ne, 15).tolist(),
          "weight": sixty_fourths(rng, 15), "delay": rng.integers(1, 4, 15).tolist()}  # fmt: skip
    ie = {"pre": rng.integers(0, ni, 8).tolist(), "post": rng.integers(0, ne, 8).tolist(), "weight": -0.5, "delay": 1}
    dense = sixty_fourths(rng, ni, ne)
    box = {"tau_mem_inv": 50.0, "v_th": 1.0, "v_reset": 0.0, "synapse": "delta", "rho_reset": 2.0}
    request = {
        "dt": 1e-3,
        "steps": steps,
        "network": {
            "nodes": [
                {"name": "cue", "type": "spikes", "times": cue_times.tolist(), "indices": cue_neurons.tolist(), "size": ne},
                {"name": "E", "type": "lifbox_refrac", "size": ne, "params": box},
                {"name": "I", "type": "lif", "size": ni, "params": {"v_th": 0.3}},
            ],
            "edges": [
                {"from": "cue", "to": "E", "type": "one_to_one", "weight": 0.75},
                {"from": "E", "to": "E", "type": "sparse", **ee},
                {"from": "E", "to": "I", "type": "dense", "weight": dense, "delay": 2},
                {"from": "I", "to": "E", "type": "sparse", **ie},
            ],
        },
        "record": {"voltages": ["E", "I"]},
    }
    arrays = {"cue": (cue_times, cue_neurons), "ee": ee, "ie": ie, "dense": np.asarray(dense, dtype=np.float32), "box": box}
    return request, arrays


def reference_run(request: dict[str, Any], arrays: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The obvious simulation: one step at a time, every synapse's spike put where it arrives."""
    steps, ne, ni = request["steps"], 6, 4
    dt = request["dt"]
    zeros = torch.zeros(1, ne)
    box = cast_params(snn.LIFBoxRefracParameters(**arrays["box"]), zeros)
    lif = cast_params(snn.LIFParameters(v_th=0.3), zeros)
    e_state = snn.LIFBoxRefracFeedForwardState(v=torch.zeros(1, ne), rho=torch.zeros(1, ne))
    i_state = snn.LIFFeedForwardState(v=torch.zeros(1, ni), i=torch.zeros(1, ni))
    arriving_e = torch.zeros(steps + 4, 1, ne)
    arriving_i = torch.zeros(steps + 4, 1, ni)
    cue = torch.zeros(steps, 1, ne)
    for t, n in zip(*arrays["cue"], strict=True):
        cue[t, 0, n] += 1
    out: dict[str, list[torch.Tensor]] = {"E": [], "I": [], "vE": [], "vI": []}
    dense = torch.from_numpy(arrays["dense"])
    for t in range(steps):
        z_e, e_state = snn.lif_box_refrac_feed_forward_step(arriving_e[t] + cue[t] * 0.75, e_state, box, dt)
        z_i, i_state = snn.lif_feed_forward_step(arriving_i[t], i_state, lif, dt)
        for pre, post, weight, delay in zip(*(arrays["ee"][k] for k in ("pre", "post", "weight", "delay")), strict=True):
            arriving_e[t + delay, 0, post] += z_e[0, pre] * weight
        arriving_i[t + 2] += z_e @ dense.t()
        for pre, post in zip(arrays["ie"]["pre"], arrays["ie"]["post"], strict=True):
            arriving_e[t + 1, 0, post] += z_i[0, pre] * -0.5
        out["E"].append(z_e[0])
        out["I"].append(z_i[0])
        out["vE"].append(e_state.v[0])
        out["vI"].append(i_state.v[0])
    return {key: torch.stack(values) for key, values in out.items()}


@pytest.mark.parametrize("chunk_steps", [None, 1, 7])
def test_recurrence_and_delays_equal_a_step_by_step_reference(chunk_steps: int | None) -> None:
    request, arrays = recurrent_request()
    parsed, plan = parse_request(request)
    assert plan.graph is not None and plan.graph.pass_steps == 1  # the E -> E edge has delays of 1 step
    result = simulate(parsed, plan, chunk_steps=chunk_steps)
    expected = reference_run(request, arrays)
    for name in ("E", "I"):
        layer = result.layers[name]
        spikes = torch.zeros(request["steps"], layer.counts.size)
        spikes[torch.from_numpy(layer.times), torch.from_numpy(layer.senders)] = 1
        assert torch.equal(spikes, expected[name]), name
        assert torch.equal(torch.from_numpy(layer.voltages), expected["v" + name]), name
    assert result.layers["E"].times.size > 20 and result.layers["I"].times.size > 5


def test_a_run_in_passes_of_the_cycle_delay_does_not_depend_on_the_chunking() -> None:
    request = balanced(ne=400, ni=100, delay=4)
    request["steps"] = 300
    parsed, plan = parse_request(request)
    assert plan.graph is not None and plan.graph.pass_steps == 4
    whole, chunked = simulate(parsed, plan), simulate(parsed, plan, chunk_steps=37)
    assert whole.layers["E"].times.size > 500
    assert_same_recordings(whole, chunked)


def test_the_seed_draws_the_connectivity_the_drive_and_the_initial_voltages() -> None:
    request = balanced()
    again, other = balanced(), balanced()
    other["seed"] = 1
    first = run(request)
    assert_same_recordings(first, run(again))
    assert not np.array_equal(first.layers["E"].senders, run(other).layers["E"].senders)


def test_two_inputs_of_one_rate_draw_different_spikes() -> None:
    request = {
        "steps": 400,
        "network": {
            "nodes": [
                {"name": "a", "type": "poisson", "rates": 100.0, "shape": [50]},
                {"name": "b", "type": "poisson", "rates": 100.0, "shape": [50]},
                {"name": "A", "type": "iaf", "size": 50, "params": {"v_th": 0.5}},
                {"name": "B", "type": "iaf", "size": 50, "params": {"v_th": 0.5}},
            ],
            "edges": [
                {"from": "a", "to": "A", "type": "one_to_one"},
                {"from": "b", "to": "B", "type": "one_to_one"},
            ],
        },
    }
    result = run(request)
    a, b = result.layers["A"], result.layers["B"]
    assert abs(a.times.size - b.times.size) < 400  # both about 2,000
    assert not np.array_equal(a.senders, b.senders)


def test_initial_voltages_are_given_or_drawn() -> None:
    request = {
        "dt": 1e-3,
        "steps": 3,
        "network": {
            "nodes": [
                {"name": "given", "type": "lifbox", "size": 3, "v0": [0.25, 0.5, 0.75]},
                {"name": "drawn", "type": "lifbox", "size": 1000, "v0": {"init": "uniform", "low": 0.0, "high": 0.5}},
            ]
        },
        "record": {"voltages": ["given", "drawn"]},
    }
    result = run(request)
    decay = np.float32(1) - np.float32(1e-3 * 100.0)
    given = result.layers["given"].voltages
    assert given is not None
    np.testing.assert_allclose(given[0], np.asarray([0.25, 0.5, 0.75]) * decay, rtol=1e-6)
    drawn = result.layers["drawn"].voltages
    assert drawn is not None and 0.2 < drawn[0].mean() / decay < 0.3 and drawn[0].max() < 0.5


def test_a_batched_graph_runs_each_entry_on_its_own_drive() -> None:
    request = balanced()
    request["batch"] = 3
    result = run(request)
    layer = result.layers["E"]
    assert layer.counts is not None and layer.counts.shape == (3, 80)
    entries = [set(zip(layer.times[layer.batch == b], layer.senders[layer.batch == b], strict=True)) for b in range(3)]
    assert all(entries) and entries[0] != entries[1]


def test_layer_nodes_after_the_top_level_input_run_as_the_chain_does() -> None:
    """The seed walkthrough's chain as a graph: the top-level input is the node `input`, the
    linear layer a layer node fed by an identity edge; the weights are drawn from the seed in node
    order, so they equal the chain's too."""
    chain = json.loads((EXAMPLES / "poisson_population.json").read_text())
    layers = chain["network"]["layers"]
    graph = copy.deepcopy(chain)
    graph["network"] = {
        "nodes": [
            {**layers[0], "name": "synapses"},
            {**layers[1], "size": layers[0]["out_features"]},
        ],
        "edges": [
            {"from": "input", "to": "synapses", "type": "identity"},
            {"from": "synapses", "to": "population", "type": "identity"},
        ],
    }
    from_chain, from_graph = run(chain), run(graph)
    assert from_chain.layers["population"].spike_count > 1000
    assert_same_recordings(from_chain, from_graph)


def test_a_recurrent_layer_node_loop_equals_lif_recurrent() -> None:
    """snnTorch's RLeaky as NIR writes it: a population, a linear layer node of recurrent weights
    back into it (one step of delay), beside the input's weights."""
    rng = np.random.default_rng(8)
    w_in, w_rec = sixty_fourths(rng, 12, 5), np.asarray(sixty_fourths(rng, 12, 12))
    np.fill_diagonal(w_rec, 0.0)
    params = {"tau_mem_inv": 100.0, "tau_syn_inv": 200.0, "v_th": 0.4}
    base = {"input": {"type": "poisson", "rates": 300.0, "shape": [5]}, "steps": 400, "seed": 2, "record": {"voltages": ["rec"]}}
    recurrent = base | {"network": {"layers": [
        {"type": "lif_recurrent", "name": "rec", "in_features": 5, "out_features": 12, "input_weights": w_in,
         "recurrent_weights": w_rec.tolist(), "params": params},
    ]}}  # fmt: skip
    graph = base | {
        "network": {
            "nodes": [
                {"name": "w_in", "type": "linear", "in_features": 5, "out_features": 12, "weight": w_in, "bias": False},
                {"name": "rec", "type": "lif", "size": 12, "params": params},
                {
                    "name": "w_rec",
                    "type": "linear",
                    "in_features": 12,
                    "out_features": 12,
                    "weight": w_rec.tolist(),
                    "bias": False,
                },
            ],
            "edges": [
                {"from": "input", "to": "w_in", "type": "identity"},
                {"from": "w_in", "to": "rec", "type": "identity"},
                {"from": "rec", "to": "w_rec", "type": "identity"},
                {"from": "w_rec", "to": "rec", "type": "identity", "delay": 1},
            ],
        }
    }
    expected, got = run(recurrent).layers["rec"], run(graph).layers["rec"]
    assert expected.spike_count > 100
    assert np.array_equal(expected.times, got.times) and np.array_equal(expected.senders, got.senders)
    np.testing.assert_allclose(expected.voltages, got.voltages, rtol=0, atol=1e-6)


BERNOULLI_BUILD = {
    "steps": 1,
    "network": {
        "nodes": [{"name": "P", "type": "lifbox", "size": 20_000}],
        "edges": [{"from": "P", "to": "P", "type": "pairwise_bernoulli", "p": 0.1, "delay": 1}],
    },
}  # 40 million synapses: about 2 s to draw here


def test_a_cancel_stops_the_build_of_a_large_graph() -> None:
    asked: list[float] = []

    def cancel() -> bool:
        asked.append(time.perf_counter())
        return True

    started = time.perf_counter()
    with pytest.raises(Cancelled, match="while building the network"):
        simulate(*parse_request(BERNOULLI_BUILD), is_cancelled=cancel)
    assert len(asked) == 1 and asked[0] - started < 3.0  # asked after about 0.2 s of work (0.3 s here), then stopped


def test_a_runs_wall_time_includes_building_its_graph() -> None:
    started = time.perf_counter()
    result = simulate(*parse_request(BERNOULLI_BUILD))
    assert result.stats["wall_s"] > 0.8 * (time.perf_counter() - started)  # one step: the build is nearly all of it


@pytest.mark.parametrize(("reset", "every"), [("subtract", 15), ("value", 990)])
def test_a_graphs_chunk_asks_whether_to_stop_between_its_passes(reset: str, every: int) -> None:
    """Brunel's 10,000 steps as one chunk: the chunk asks before each pass after the first (its
    passes are 15 steps, the shortest delay on a cycle), so a chunk longer than its estimate can
    still be cancelled part of the way; where the network kernel runs it (a reset to a value),
    between its calls of 66 passes."""
    request = json.loads((pathlib.Path(__file__).parents[3] / "examples" / "brunel.json").read_text())
    for node in request["network"]["nodes"][:2]:
        node["params"]["reset_method"] = reset
    parsed, plan = parse_request(request)
    run = GraphRun(parsed, plan, torch.device("cpu"))
    assert run.kernel_runs == (reset == "value")
    asked: list[int] = []

    def stop(step: int) -> None:
        asked.append(step)
        if len(asked) == 3:
            raise Cancelled(f"cancelled after {step} of 10000 steps")

    with pytest.raises(Cancelled, match=f"cancelled after {3 * every} of 10000 steps"):
        run.chunk(0, 10_000, None, should_stop=stop)
    assert asked == [every, 2 * every, 3 * every]
