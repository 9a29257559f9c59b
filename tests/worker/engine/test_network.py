"""The network kernel steps a graph of lif_channels populations (and of Brunel's box neurons)
exactly as the graph runner's passes do: the same spikes, voltages and plastic weights, to the
bit, with one thread or a team, in chunks of any length."""

import functools

import numpy as np
import pytest
import torch

from worker.engine import network
from worker.engine.projections import Projection
from worker.engine_options import ENGINE
from worker.simulation.graph_runner import GraphRun
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

pytestmark = pytest.mark.skipif(network.library() is None, reason="no C compiler: the kernel cannot be built")

EXACT = {"tau_mem_inv": 50.0, "v_leak": -49.0, "v_th": -50.0, "v_reset": -60.0, "rho_reset": 49.0, "integration": "exact"}
EULER = {"tau_mem_inv": 50.0, "v_leak": -60.0, "v_th": -50.0, "v_reset": -60.0, "rho_reset": 20.0}


def cuba_like() -> dict:
    """Exact integration, two current channels, recurrent edges of one step, a counting input."""
    v0 = {"init": "uniform", "low": -60.0, "high": -50.0}
    exc, inh = {"type": "current_exp", "tau_syn": 0.005}, {"type": "current_exp", "tau_syn": 0.01}
    edges = [
        {"from": source, "to": target, "type": "pairwise_bernoulli", "p": 0.1, "weight": weight, "delay": 1, "autapses": False,
         "synapse": synapse}
        for source, synapse, weight in (("E", exc, 1.62), ("I", inh, -9.0))
        for target in ("E", "I")
    ]  # fmt: skip
    edges.append({"from": "drive", "to": "E", "type": "fixed_in_degree", "k": 4, "weight": 3.0, "delay": 2, "synapse": exc})
    nodes = [
        {"name": "drive", "type": "poisson", "rates": 40.0, "sources": 3, "shape": [50]},
        {"name": "E", "type": "lif_channels", "size": 160, "params": EXACT, "v0": v0},
        {"name": "I", "type": "lif_channels", "size": 40, "params": EXACT, "v0": v0},
    ]
    return {"dt": 1e-4, "steps": 1500, "seed": 3, "network": {"nodes": nodes, "edges": edges},
            "record": {"voltages": ["I"], "neurons": {"I": [0, 7, 39]}}}  # fmt: skip


def coba_like() -> dict:
    """Euler, two conductance channels with initial values drawn, delays drawn per synapse, a
    delta input through an identity edge, a threshold per neuron."""
    exc = {"type": "conductance_exp", "tau_syn": 0.005, "e_rev": 0.0, "initial": {"init": "normal", "mean": 4.0, "std": 1.5}}
    inh = {"type": "conductance_exp", "tau_syn": 0.01, "e_rev": -80.0, "initial": {"init": "normal", "mean": 20.0, "std": 12.0}}
    edges = [
        {"from": "E", "to": "E", "type": "pairwise_bernoulli", "p": 0.2, "weight": 1.5, "delay": {"low": 1, "high": 4},
         "synapse": exc},
        {"from": "I", "to": "E", "type": "fixed_out_degree", "k": 10, "weight": 6.7, "delay": 1, "synapse": inh},
        {"from": "E", "to": "I", "type": "pairwise_bernoulli", "p": 0.2, "weight": 1.5, "delay": 1,
         "synapse": {**exc, "initial": 1.0}},
        {"from": "kick", "to": "I", "type": "identity", "delay": 1, "synapse": {"type": "delta"}},
    ]  # fmt: skip
    nodes = [
        {"name": "kick", "type": "spikes", "times": [5, 5, 30], "indices": [0, 3, 3], "size": 40},
        {"name": "E", "type": "lif_channels", "size": 160, "params": EULER, "v0": {"init": "normal", "mean": -65.0, "std": 5.0}},
        {"name": "I", "type": "lif_channels", "size": 40, "params": {**EULER, "v_th": [-50.0 - i / 10 for i in range(40)]}},
    ]
    return {"dt": 1e-4, "steps": 1500, "seed": 5, "network": {"nodes": nodes, "edges": edges}}


def plastic(bounds: str = "hard", pairing: str = "all_to_all") -> dict:
    """Poisson input into a population through a dense plastic edge (one step) and a sparse one
    (three steps, soft or nearest), with a plastic recurrent edge; weights snapshotted."""
    rule = {"type": "stdp", "tau_pre": 0.02, "tau_post": 0.02, "a_pre": 0.0005, "a_post": -0.000525, "w_max": 0.02,
            "bounds": bounds, "pairing": pairing}  # fmt: skip
    cond = {"type": "conductance_exp", "tau_syn": 0.005, "e_rev": 0.0}
    edges = [
        {"name": "dense", "from": "in", "to": "P", "type": "dense", "delay": 1, "synapse": cond, "plasticity": rule,
         "weight": {"init": "uniform", "low": 0.0, "high": 0.02}},
        {"name": "sparse", "from": "in", "to": "P", "type": "fixed_in_degree", "k": 20, "delay": 3, "synapse": cond,
         "plasticity": rule, "weight": 0.01},
        {"name": "recurrent", "from": "P", "to": "P", "type": "pairwise_bernoulli", "p": 0.2, "delay": 2, "synapse": cond,
         "plasticity": {**rule, "bounds": "hard"}, "weight": 0.005},
    ]  # fmt: skip
    nodes = [
        {"name": "in", "type": "poisson", "rates": 40.0, "shape": [400]},
        {"name": "P", "type": "lif_channels", "size": 10,
         "params": {"tau_mem_inv": 100.0, "v_leak": -74.0, "v_th": -54.0, "v_reset": -60.0}, "v0": -74.0},
    ]  # fmt: skip
    record = {"weights": {"dense": {"every": 37}, "sparse": {"steps": [0, 99, 100, 499]}}, "voltages": ["P"]}
    return {"dt": 1e-4, "steps": 500, "seed": 7, "network": {"nodes": nodes, "edges": edges}, "record": record}


def undelayed() -> dict:
    """Edges of no delay (so every node delivers before the next runs) in a loop closed by a delay,
    and a population that has no channels."""
    cur = {"type": "current_exp", "tau_syn": 0.005}
    edges = [
        {"from": "in", "to": "A", "type": "pairwise_bernoulli", "p": 0.2, "weight": 30.0, "synapse": cur},
        {"from": "A", "to": "B", "type": "pairwise_bernoulli", "p": 0.3, "weight": 20.0, "synapse": cur},
        {"from": "B", "to": "A", "type": "fixed_in_degree", "k": 5, "weight": -4.0, "delay": 1},
        {"from": "B", "to": "C", "type": "one_to_one", "weight": 12.0, "delay": 2},
    ]
    nodes = [
        {"name": "in", "type": "poisson", "rates": 200.0, "shape": [30]},
        {"name": "A", "type": "lif_channels", "size": 50, "params": EULER},
        {"name": "B", "type": "lif_channels", "size": 20, "params": EULER},
        {"name": "C", "type": "lif_channels", "size": 20, "params": EULER},  # no channels: delta input only
    ]
    return {"dt": 1e-4, "steps": 1500, "seed": 9, "network": {"nodes": nodes, "edges": edges}}


def busy_targets() -> dict:
    """Targets spiking in most steps from sources that spike rarely: far more postsynaptic spikes
    between two presynaptic events than the kernel holds per target, so it applies them early."""
    rule = {"type": "stdp", "a_pre": 0.001, "a_post": -0.0011, "w_max": 0.05, "bounds": "soft"}
    nodes = [
        {"name": "rare", "type": "poisson", "rates": 20.0, "shape": [30]},
        {"name": "drive", "type": "poisson", "rates": 3000.0, "shape": [8]},
        {"name": "P", "type": "lif_channels", "size": 8, "params": {"tau_mem_inv": 50.0, "v_th": 0.5, "v_reset": 0.0}},
    ]
    edges = [
        {"from": "drive", "to": "P", "type": "one_to_one", "weight": 1.0, "delay": 1},
        {"name": "learn", "from": "rare", "to": "P", "type": "dense", "delay": 2, "plasticity": rule,
         "weight": {"init": "uniform", "low": 0.0, "high": 0.05}},
    ]  # fmt: skip
    return {"dt": 1e-4, "steps": 1500, "seed": 4, "network": {"nodes": nodes, "edges": edges},
            "record": {"weights": {"learn": {"every": 250}}}}  # fmt: skip


def out_of_bounds() -> dict:
    """Initial weights above w_max (delivered as they are until a change clips them), sources that
    never fire, and rows that hold a target twice (multapses: the scalar row)."""
    rule = {"type": "stdp", "a_pre": 0.002, "a_post": -0.0021, "w_max": 0.02}
    nodes = [
        {"name": "in", "type": "poisson", "rates": [0.0] * 10 + [60.0] * 30, "shape": [40]},
        {"name": "P", "type": "lif_channels", "size": 30, "params": {"tau_mem_inv": 50.0, "v_th": 0.5, "v_reset": 0.0}},
    ]
    edges = [
        {"name": "high", "from": "in", "to": "P", "type": "dense", "delay": 1, "plasticity": rule,
         "weight": {"init": "uniform", "low": 0.0, "high": 0.2}},
        {"name": "repeats", "from": "in", "to": "P", "type": "fixed_in_degree", "k": 30, "multapses": True, "delay": 2,
         "plasticity": {**rule, "bounds": "soft"}, "weight": 0.01},
    ]  # fmt: skip
    return {"dt": 1e-4, "steps": 800, "seed": 11, "network": {"nodes": nodes, "edges": edges}}


def brunel_like() -> dict:
    """Brunel's box neurons with delta synapses: delays of 15 steps, and 10 to 15 on one edge, so
    the runner's passes are 10 steps (a step a pass sums a slot's inputs in another order: the
    voltages differ); Poisson counts of several spikes a step through one-to-one edges (the
    runner multiplies a count by the weight); voltages recorded."""
    params = {"tau_mem_inv": 50.0, "v_th": 20.0, "v_reset": 10.0, "synapse": "delta", "rho_reset": 20.0}
    v0 = {"init": "uniform", "low": 0.0, "high": 20.0}
    nodes = [
        {"name": "E", "type": "lifbox_refrac", "size": 160, "params": params, "v0": v0},
        {"name": "I", "type": "lifbox_refrac", "size": 40, "params": params, "v0": v0},
        {"name": "drive_E", "type": "poisson", "rates": 1200.0, "sources": 10, "shape": [160]},
        {"name": "drive_I", "type": "poisson", "rates": 1200.0, "sources": 10, "shape": [40]},
    ]
    edges = [  # weights whose sums round differently in different orders
        {"from": "drive_E", "to": "E", "type": "one_to_one", "weight": 0.37},
        {"from": "drive_I", "to": "I", "type": "one_to_one", "weight": 0.37},
        {"from": "E", "to": "E", "type": "fixed_in_degree", "k": 16, "weight": 0.11, "delay": {"low": 10, "high": 15}},
        {"from": "E", "to": "I", "type": "fixed_in_degree", "k": 16, "weight": 0.11, "delay": 15},
        {"from": "I", "to": "E", "type": "fixed_in_degree", "k": 4, "weight": -0.53, "delay": 15},
        {"from": "I", "to": "I", "type": "fixed_in_degree", "k": 4, "weight": -0.53, "delay": 15},
    ]
    return {"dt": 1e-4, "steps": 1200, "seed": 2, "network": {"nodes": nodes, "edges": edges}, "record": {"voltages": ["E"]}}


def feed_forward() -> dict:
    """No cycle, so the runner's pass is the whole chunk: the input reaches B in one step and A's
    spikes in four, so a step of B sums the input's (sent later) first, as the runner's pass
    does, and not in the order sent."""
    box = {"tau_mem_inv": 50.0, "v_th": 1.0, "v_reset": 0.0, "synapse": "delta", "rho_reset": 5.0}
    nodes = [
        {"name": "in", "type": "poisson", "rates": 300.0, "sources": 4, "shape": [60]},
        {"name": "A", "type": "lif_channels", "size": 60, "params": {"tau_mem_inv": 50.0, "v_th": 0.3, "v_reset": 0.0}},
        {"name": "B", "type": "lifbox_refrac", "size": 30, "params": box},
    ]
    edges = [
        {"from": "in", "to": "A", "type": "one_to_one", "weight": 0.15, "delay": 1},
        {"from": "in", "to": "B", "type": "fixed_in_degree", "k": 6, "weight": 0.07, "delay": 1},
        {"from": "A", "to": "B", "type": "fixed_in_degree", "k": 8, "weight": 0.23, "delay": 4},
    ]
    return {"dt": 1e-4, "steps": 900, "seed": 6, "network": {"nodes": nodes, "edges": edges}, "record": {"voltages": ["B"]}}


CASES = {
    "brunel": brunel_like,
    "feed-forward": feed_forward,
    "out-of-bounds": out_of_bounds,
    "busy-targets": busy_targets,
    "undelayed": undelayed,
    "cuba": cuba_like,
    "coba": coba_like,
    "stdp": plastic,
    "stdp-soft": lambda: plastic("soft"),
    "stdp-nearest": lambda: plastic(pairing="nearest"),
}


def run(request: dict, *, kernel: bool, chunk_steps: int | None = None) -> Result:
    saved = ENGINE.fused
    ENGINE.fused = kernel  # off: the graph runner's own passes (the kernel needs the fused kernels on)
    try:
        return simulate(*parse_request(request), chunk_steps=chunk_steps)
    finally:
        ENGINE.fused = saved


def assert_same(ours: Result, theirs: Result) -> None:
    assert ours.layers.keys() == theirs.layers.keys() and ours.weights.keys() == theirs.weights.keys()
    for name, layer in ours.layers.items():
        other = theirs.layers[name]
        for key in ("times", "senders", "counts", "voltages"):
            if getattr(layer, key) is not None:
                assert np.array_equal(getattr(layer, key), getattr(other, key)), f"{name}.{key}"
    for name, weights in ours.weights.items():
        for key in ("pre", "post", "final", "steps", "snapshots"):
            assert np.array_equal(getattr(weights, key), getattr(theirs.weights[name], key)), f"{name}.{key}"


PLASTIC = {case for case, make in CASES.items() if any("plasticity" in edge for edge in make()["network"]["edges"])}
NEEDS_VECTOR_ROWS = pytest.mark.skipif(
    network.library() is None or network.library().network_vector_lanes() == 1, reason="built without AVX-512 or AVX2"
)
ROWS = [(case, False) for case in CASES] + [
    pytest.param(case, True, marks=NEEDS_VECTOR_ROWS) for case in CASES if case in PLASTIC
]


@functools.cache
def graph_runner(case: str) -> Result:
    """The graph runner's own passes (the reference), once per case."""
    return run(CASES[case](), kernel=False)


@pytest.mark.parametrize(("case", "vector"), ROWS)
def test_the_kernel_is_the_graph_runner_to_the_bit(case: str, vector: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plastic rows in vector registers or one synapse at a time: the same bits."""
    monkeypatch.setattr(network, "VECTOR", vector)
    ours = run(CASES[case](), kernel=True)
    spikes = sum(layer.spike_count for layer in ours.layers.values())
    assert spikes > 100, "the network must be active"
    assert_same(ours, graph_runner(case))


def kernel_runs(request: dict) -> bool:
    return GraphRun(*parse_request(request), torch.device("cpu")).kernel_runs


def test_the_kernel_runs_where_it_should() -> None:
    assert kernel_runs(plastic()) and kernel_runs(brunel_like())
    mixed = plastic()
    mixed["network"]["nodes"][1] = {"name": "P", "type": "lif", "size": 10}
    for edge in mixed["network"]["edges"]:
        edge.pop("synapse")
    assert not kernel_runs(mixed), "a lif population runs in the graph runner"
    for change in ({"synapse": "current"}, {"reset_method": "subtract"}):
        other = brunel_like()
        other["network"]["nodes"][0]["params"] |= change
        assert not kernel_runs(other), f"a box population with {change} runs in the graph runner"


@pytest.mark.parametrize("case", ["cuba", "stdp-soft", "undelayed"])
def test_a_team_and_any_chunking_give_the_same_bits(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads own ranges of neurons and targets, so a team sums in the one order; chunks of 7 steps
    (snapshots falling inside and at their ends) give what whole chunks give."""
    request = CASES[case]()
    alone = run(request, kernel=True)
    monkeypatch.setattr(network, "PARALLEL_WORK", 0)
    monkeypatch.setattr(ENGINE, "threads", 3)
    assert_same(run(request, kernel=True, chunk_steps=7), alone)


@pytest.mark.parametrize("case", ["brunel", "feed-forward"])
def test_passes_of_several_steps_in_a_team_and_short_chunks_are_the_runners(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the runner's passes are longer than a step, a chunk's passes start with the chunk, so
    chunks of 7 steps sum in another order than whole ones: the kernel, alone and in a team, still
    gives what the runner gives in the same chunks."""
    request = CASES[case]()
    reference = run(request, kernel=False, chunk_steps=7)
    assert_same(run(request, kernel=True, chunk_steps=7), reference)
    monkeypatch.setattr(network, "PARALLEL_WORK", 0)
    monkeypatch.setattr(ENGINE, "threads", 3)
    assert_same(run(request, kernel=True, chunk_steps=7), reference)


def test_snapshots_are_the_weights_after_their_steps() -> None:
    result = run(plastic(), kernel=True)
    dense, sparse = result.weights["dense"], result.weights["sparse"]
    assert dense.steps.tolist() == list(range(36, 500, 37)) and dense.snapshots.shape == (13, 4000)
    assert sparse.steps.tolist() == [0, 99, 100, 499] and np.array_equal(sparse.snapshots[-1], sparse.final)
    assert not np.array_equal(sparse.snapshots[0], sparse.snapshots[1])
    assert dense.pre.tolist()[:3] == [0, 0, 0] and dense.post.tolist()[:3] == [0, 1, 2], "by source, then target"
    assert float(dense.final.min()) >= 0.0 and float(dense.final.max()) <= 0.02


def test_rows_that_repeat_a_target_are_told_apart() -> None:
    """The vector rows scatter into the ring, so an edge whose rows hold a target twice runs scalar."""
    offsets = torch.tensor([0, 3, 5, 5], dtype=torch.int64)
    distinct = Projection(3, 4, offsets, torch.tensor([0, 2, 3, 3, 1], dtype=torch.int32), torch.tensor(1.0), torch.tensor(1))
    repeated = Projection(3, 4, offsets, torch.tensor([0, 2, 2, 3, 1], dtype=torch.int32), torch.tensor(1.0), torch.tensor(1))
    assert network._rows_are_distinct(distinct), "3 ends one row and starts the next: no repeat"
    assert not network._rows_are_distinct(repeated)
