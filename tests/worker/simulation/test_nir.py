"""NIR import and export: every supported node, the refusals, round trips, the units (spike times
against the continuous equations), and what the peers' exporters produce."""

import base64
import io
import itertools
import json
import math
import pathlib
import re
from typing import Any

import nir
import numpy as np
import pytest
import torch

from tests.helpers import assert_same_recordings
from worker.simulation.errors import InvalidRequest
from worker.simulation.nir_export import network_to_nir, network_to_nir_bytes
from worker.simulation.nir_import import ImportOptions, NIRError, if_notes, nir_to_network
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

EXAMPLES = pathlib.Path(__file__).parents[3] / "examples"
ROUND_TRIP_EXAMPLES = ["seed", "conv_feedforward", "poisson_population"]


def chain(*nodes: nir.NIRNode, input_shape: tuple[int, ...]) -> nir.NIRGraph:
    named = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    named |= {f"n{i}": node for i, node in enumerate(nodes)}
    named["output"] = nir.Output(output_type={"output": np.array(nodes[-1].output_type["output"])})
    names = list(named)
    return nir.NIRGraph(nodes=named, edges=list(itertools.pairwise(names)))


def run_graph(graph: nir.NIRGraph, current: np.ndarray, steps: int, dt: float, record: dict | None = None) -> Result:
    network, _ = nir_to_network(graph, dt)
    request = {"network": network, "input": {"type": "constant", "value": current.tolist(), "steps": steps}, "dt": dt}
    if record:
        request["record"] = record
    return simulate(*parse_request(request))


def ones(n: int, value: float = 1.0) -> np.ndarray:
    return np.full(n, value)


def test_every_supported_node_imports_with_the_documented_layers() -> None:
    rng = np.random.default_rng(0)
    graph = chain(
        nir.Conv2d(
            input_shape=(6, 6), weight=rng.normal(size=(2, 1, 3, 3)), stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(2)
        ),
        nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        nir.AvgPool2d(kernel_size=np.array([1, 1]), stride=np.array([1, 1]), padding=np.array([0, 0])),
        nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
        nir.Affine(weight=rng.normal(size=(5, 18)), bias=np.zeros(5)),
        nir.Scale(scale=ones(5, 2.0)),
        nir.LIF(tau=ones(5, 0.02), r=ones(5, 3.0), v_leak=ones(5, 0.0), v_threshold=ones(5, 1.0)),
        nir.Linear(weight=rng.normal(size=(4, 5))),
        nir.CubaLIF(
            tau_syn=ones(4, 0.005), tau_mem=ones(4, 0.01), r=ones(4), v_leak=ones(4, 0.0), v_threshold=ones(4), w_in=ones(4, 2.0)
        ),
        nir.Affine(weight=rng.normal(size=(3, 4)), bias=np.zeros(3)),
        nir.IF(r=ones(3, 100.0), v_threshold=ones(3)),
        nir.Affine(weight=rng.normal(size=(3, 3)), bias=np.zeros(3)),
        nir.CubaLI(tau_syn=ones(3, 0.005), tau_mem=ones(3, 0.01), r=ones(3), v_leak=ones(3, 0.0)),
        nir.LI(tau=ones(3, 0.01), r=ones(3, 0.5), v_leak=ones(3, 0.0)),
        input_shape=(1, 6, 6),
    )
    network, shape = nir_to_network(graph, dt=0.001)
    assert shape == (1, 6, 6)
    assert [(layer["type"], layer["name"]) for layer in network["layers"]] == [
        ("conv2d", "n0"), ("avgpool2d", "n1"), ("scale", "n1.sum"), ("avgpool2d", "n2"), ("flatten", "n3"),
        ("linear", "n4"), ("scale", "n5"), ("scale", "n6.scale"), ("lifbox", "n6"), ("linear", "n7"),
        ("scale", "n8.scale"), ("lif", "n8"), ("linear", "n9"), ("scale", "n10.scale"), ("iaf", "n10"), ("linear", "n11"),
        ("scale", "n12.scale"), ("li", "n12"), ("scale", "n13.scale"), ("li", "n13"),
    ]  # fmt: skip
    by_name = {layer["name"]: layer for layer in network["layers"]}
    assert by_name["n1.sum"]["weight"] == 4.0  # SumPool2d = average times the window
    assert by_name["n6.scale"]["weight"] == 3.0  # LIF: r
    assert by_name["n8.scale"]["weight"] == pytest.approx(2.0 * 0.001 / 0.005)  # CubaLIF: r * w_in * dt / tau_syn
    assert by_name["n10.scale"]["weight"] == pytest.approx(0.1)  # IF: r * dt
    assert by_name["n12.scale"]["weight"] == pytest.approx(0.2)  # CubaLI with w_in = 1
    assert by_name["n13"]["params"]["tau_syn_inv"] == pytest.approx(1000.0)  # LI: no synapse, current lasts one step
    assert by_name["n8"]["params"]["tau_syn_inv"] == pytest.approx(200.0) and by_name["n8"]["params"][
        "tau_mem_inv"
    ] == pytest.approx(100.0)
    request = {"network": network, "input": {"type": "poisson", "rates": 200.0, "shape": [1, 6, 6], "steps": 50}}
    result = simulate(*parse_request(request))
    assert set(result.layers) == {"n6", "n8", "n10"}


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (nir.I(r=ones(3)), "node 'n1' (I) has no counterpart"),
        (nir.Delay(delay=ones(3)), "node 'n1' (Delay) has no counterpart"),
    ],
)
def test_nodes_without_a_counterpart_are_refused_by_name(node: nir.NIRNode, message: str) -> None:
    graph = chain(nir.Affine(weight=np.ones((3, 2)), bias=np.zeros(3)), node, input_shape=(2,))
    with pytest.raises(NIRError, match=re.escape(message)):
        nir_to_network(graph)


def test_conv1d_and_threshold_import_and_round_trip() -> None:
    rng = np.random.default_rng(1)
    graph = chain(
        nir.Conv1d(
            input_shape=10, weight=rng.normal(size=(3, 2, 3)), stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(3)
        ),
        nir.Threshold(threshold=np.full((3, 10), 0.2)),
        nir.Flatten(input_type={"input": np.array([3, 10])}, start_dim=0, end_dim=-1),
        nir.Affine(weight=rng.normal(size=(4, 30)), bias=np.zeros(4)),
        nir.LIF(tau=ones(4, 0.01), r=ones(4), v_leak=ones(4, 0.0), v_threshold=ones(4, 0.5), v_reset=ones(4, 0.0)),
        input_shape=(2, 10),
    )
    network, _ = nir_to_network(graph, dt=0.001)
    assert [layer["type"] for layer in network["layers"]] == ["conv1d", "threshold", "flatten", "linear", "lifbox"]
    assert network["layers"][1]["threshold"] == pytest.approx(0.2)
    request = {"network": network, "input": {"type": "poisson", "rates": 300.0, "shape": [2, 10], "steps": 80}}
    parsed, plan = parse_request(request)
    first = simulate(parsed, plan)
    assert first.layers["n4"].spike_count > 0
    again, _ = nir_to_network(nir.read(io.BytesIO(network_to_nir_bytes(parsed, plan))), dt=0.001)
    assert_same_recordings(simulate(*parse_request({**request, "network": again})), first)


def test_a_graph_without_neurons_is_refused() -> None:
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "a": nir.Affine(weight=np.ones((2, 2)), bias=np.zeros(2)),
        "b": nir.Affine(weight=np.ones((2, 2)), bias=np.zeros(2)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")])
    with pytest.raises(NIRError, match="the graph has no neuron node"):
        nir_to_network(graph)


@pytest.mark.parametrize("name", ROUND_TRIP_EXAMPLES)
def test_export_then_import_gives_the_same_network_and_identical_results(name: str) -> None:
    request = json.loads((EXAMPLES / f"{name}.json").read_text())
    parsed, plan = parse_request(request)
    data = network_to_nir_bytes(parsed, plan)
    graph = nir.read(io.BytesIO(data), type_check=True)
    assert len(graph.nodes) == len(plan.layers) + 2
    network, shape = nir_to_network(graph, parsed.dt)
    assert shape == plan.input_shape
    assert [(layer["type"], layer["name"]) for layer in network["layers"]] == [(layer.type, layer.name) for layer in plan.layers]
    imported = {**request, "network": network}
    assert_same_recordings(simulate(*parse_request(imported)), simulate(parsed, plan))
    through_json = {**request, "network": {"nir": base64.b64encode(data).decode()}}
    assert_same_recordings(simulate(*parse_request(through_json)), simulate(parsed, plan))


def test_layers_without_a_nir_form_are_refused_on_export() -> None:
    izhikevich = json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text())
    with pytest.raises(NIRError, match=r"layer 'neurons' \(izhikevich\) has no NIR counterpart"):
        network_to_nir(*parse_request(izhikevich))
    subtractive = {
        "network": {"layers": [{"type": "lif", "name": "sub", "params": {"reset_method": "subtract"}}]},
        "input": {"type": "constant", "value": [1.0], "steps": 3},
    }
    with pytest.raises(NIRError, match="layer 'sub': NIR resets to a value; a subtractive reset has no NIR form"):
        network_to_nir(*parse_request(subtractive))
    delta = {
        "network": {"layers": [{"type": "lifbox", "name": "jump", "params": {"synapse": "delta"}}]},
        "input": {"type": "constant", "value": [1.0], "steps": 3},
    }
    with pytest.raises(NIRError, match="layer 'jump': NIR's LIF integrates a current; delta synapses have no NIR form"):
        network_to_nir(*parse_request(delta))
    refractory = {**delta, "network": {"layers": [{"type": "lif_refrac", "name": "held"}]}}
    with pytest.raises(NIRError, match=r"layer 'held' \(lif_refrac\) has no NIR counterpart"):
        network_to_nir(*parse_request(refractory))


def test_bad_nir_in_a_request_is_a_clear_error() -> None:
    base = {"input": {"type": "constant", "value": [1.0], "steps": 3}}
    with pytest.raises(InvalidRequest, match=r"network.nir: not a readable NIR file"):
        parse_request({**base, "network": {"nir": base64.b64encode(b"not an hdf5 file").decode()}})
    with pytest.raises(InvalidRequest, match=r"nir: is not valid base64"):
        parse_request({**base, "network": {"nir": "***"}})


# --- units: spike times of the continuous equations ---------------------------------------------


def lif_spike_times(tau: float, r: float, v_leak: float, v_th: float, v_reset: float, current: float, count: int) -> list[float]:
    """tau dv/dt = (v_leak - v) + r I from v = v_leak: crossing times, solved in closed form."""
    v_inf = v_leak + r * current
    first = tau * math.log((v_inf - v_leak) / (v_inf - v_th))
    interval = tau * math.log((v_inf - v_reset) / (v_inf - v_th))
    return [first + k * interval for k in range(count)]


def cuba_lif_spike_times(
    tau_syn: float, tau_mem: float, r: float, w_in: float, v_th: float, current: float, count: int
) -> list[float]:
    """tau_syn dI/dt = -I + w_in S, tau_mem dv/dt = -v + r I, v reset to 0 (I is not): integrated with
    the closed-form solution between spikes and bisection for each crossing."""
    i_inf = w_in * current
    t0, v0, i0, times = 0.0, 0.0, 0.0, []

    def v_at(t: float) -> float:
        c = r * (i0 - i_inf) / (1 - tau_mem / tau_syn)
        return r * i_inf + c * math.exp(-t / tau_syn) + (v0 - r * i_inf - c) * math.exp(-t / tau_mem)

    while len(times) < count:
        hi = 1e-6
        while v_at(hi) < v_th:
            hi *= 1.5
        lo = 0.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if v_at(mid) < v_th else (lo, mid)
        t0 += hi
        times.append(t0)
        i0 = i_inf + (i0 - i_inf) * math.exp(-hi / tau_syn)
        v0 = 0.0
    return times


def discrete_times(result: Result, layer: str, dt: float) -> np.ndarray:
    # a spike recorded at step n happened during step n, whose end is (n + 1) * dt
    return (result.layers[layer].times + 1) * dt


@pytest.mark.parametrize("current", [1.5, 3.0])
def test_nir_lif_spikes_when_the_continuous_equations_say(current: float) -> None:
    dt, tau, r, v_th, v_reset = 1e-5, 0.01, 2.0, 1.0, 0.2
    graph = chain(
        nir.LIF(tau=ones(1, tau), r=ones(1, r), v_leak=ones(1, 0.0), v_threshold=ones(1, v_th), v_reset=ones(1, v_reset)),
        input_shape=(1,),
    )
    result = run_graph(graph, np.array([current]), steps=20_000, dt=dt)
    simulated = discrete_times(result, "n0", dt)
    predicted = lif_spike_times(tau, r, 0.0, v_th, v_reset, current, len(simulated))
    assert len(simulated) >= 5
    assert abs(simulated[0] - predicted[0]) <= dt
    assert np.all(np.abs(np.diff(simulated) - np.diff(predicted)) <= dt), "every interval within one step"


def test_nir_cuba_lif_spikes_when_the_continuous_equations_say() -> None:
    dt, tau_syn, tau_mem, r, w_in, v_th, current = 1e-5, 0.005, 0.01, 1.0, 1.0, 1.0, 2.0
    node = nir.CubaLIF(
        tau_syn=ones(1, tau_syn),
        tau_mem=ones(1, tau_mem),
        r=ones(1, r),
        v_leak=ones(1, 0.0),
        v_threshold=ones(1, v_th),
        w_in=ones(1, w_in),
    )
    result = run_graph(chain(node, input_shape=(1,)), np.array([current]), steps=20_000, dt=dt)
    simulated = discrete_times(result, "n0", dt)
    predicted = cuba_lif_spike_times(tau_syn, tau_mem, r, w_in, v_th, current, len(simulated))
    assert len(simulated) >= 5
    assert abs(simulated[0] - predicted[0]) <= dt
    assert np.all(np.abs(np.diff(simulated) - np.diff(predicted)) <= dt), "every interval within one step"


# --- the peers ----------------------------------------------------------------------------------


def test_snntorch_exports_fail_nirs_type_check_with_the_installed_versions() -> None:
    """Recorded so that the day it works we notice and test the files themselves."""
    snntorch = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), snntorch.Leaky(beta=0.9, init_hidden=True))
    with pytest.raises(ValueError, match="Type inference error"):
        export_to_nir(net, torch.rand(1, 4))


@pytest.mark.parametrize("kind", ["Leaky", "Synaptic"])
def test_snntorchs_nir_mapping_reproduces_snntorchs_own_dynamics(kind: str) -> None:
    """Nodes written as snnTorch's exporter writes them (tau = dt/(1 - beta), r = tau/dt, w_in = tau_syn/dt,
    dt = 1e-4), given per-neuron arrays so NIR's type check passes. Imported, they reproduce snnTorch's
    membrane trace exactly up to the first spike (after it the two reset differently: snnTorch one
    step late)."""
    snntorch = pytest.importorskip("snntorch")
    dt, beta, alpha, n = 1e-4, 0.9, 0.8, 3
    torch.manual_seed(0)
    x = torch.rand(60, n) * (0.3 if kind == "Leaky" else 0.02)  # the synapse amplifies steady input 5x more
    if kind == "Leaky":
        neuron = snntorch.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero")
        tau = dt / (1 - beta)
        node = nir.LIF(tau=ones(n, tau), r=ones(n, tau / dt), v_leak=ones(n, 0.0), v_threshold=ones(n), v_reset=ones(n, 0.0))
        mem, trace = neuron.init_leaky(), []
        for x_t in x:
            _, mem = neuron(x_t, mem)
            trace.append(mem.detach().clone())
    else:
        neuron = snntorch.Synaptic(alpha=alpha, beta=beta, threshold=1.0, reset_mechanism="zero")
        tau_syn, tau_mem = dt / (1 - alpha), dt / (1 - beta)
        node = nir.CubaLIF(
            tau_syn=ones(n, tau_syn), tau_mem=ones(n, tau_mem), r=ones(n, tau_mem / dt), v_leak=ones(n, 0.0),
            v_threshold=ones(n), v_reset=ones(n, 0.0), w_in=ones(n, tau_syn / dt),
        )  # fmt: skip
        syn, mem = neuron.init_synaptic()
        trace = []
        for x_t in x:
            _, syn, mem = neuron(x_t, syn, mem)
            trace.append(mem.detach().clone())
    theirs = torch.stack(trace).numpy()
    network, _ = nir_to_network(chain(node, input_shape=(n,)), dt)
    request = {
        "network": network,
        "input": {"type": "tensor", "shape": [60, n], "data": x.tolist()},
        "dt": dt,
        "record": {"voltages": ["n0"]},
    }
    ours = simulate(*parse_request(request)).layers["n0"]
    first_spike = int(min(np.argmax(theirs > 1.0, axis=0)[np.any(theirs > 1.0, axis=0)], default=60))
    assert first_spike > 5, "the input must give a subthreshold stretch to compare"
    np.testing.assert_allclose(ours.voltages[:first_spike], theirs[:first_spike], rtol=1e-5, atol=1e-6)
    ours_first = ours.times.min() if ours.times.size else 60
    assert ours_first == first_spike


def test_norse_exports_import_as_written_including_its_time_constant_units() -> None:
    """Norse 1.1.0 writes tau = dt * tau_inv^-1 ... that is, dt / tau_inv (1e-5 s for a 10 ms membrane)
    and 0-d arrays that nir.write cannot store. Its in-memory graph imports; the weights survive and
    the time constants arrive as Norse wrote them, a thousand times too short."""
    norse = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    module = norse.SequentialState(torch.nn.Linear(4, 3), norse.LIFCell())
    graph = norse.to_nir(module, torch.rand(1, 4))
    with pytest.raises(TypeError, match="Scalar datasets"):
        nir.write(io.BytesIO(), graph)
    network, _ = nir_to_network(graph, dt=0.001)
    linear, *rest = network["layers"]
    weight = np.frombuffer(base64.b64decode(linear["weight"]["base64"]), dtype="<f4").reshape(3, 4)
    assert np.array_equal(weight, module[0].weight.detach().numpy())
    lif = rest[-1]
    assert lif["type"] == "lif"
    assert lif["params"]["tau_mem_inv"] == pytest.approx(1e5) and lif["params"]["tau_syn_inv"] == pytest.approx(2e5)


# --- graphs -------------------------------------------------------------------------------------


def rleaky_as_snntorch_writes_it(n: int = 6, beta: float = 0.9) -> nir.NIRGraph:
    """snnTorch's export of Linear(4 -> n), RLeaky(n), Linear(n -> 2), Leaky: the recurrent layer a
    subgraph {input, lif, w_rec, output} with its loop lif -> w_rec -> lif (its own exporter fails
    NIR's type check with the installed versions, so the graph is written here as it writes it)."""
    rng = np.random.default_rng(4)
    dt = 1e-4
    tau = dt / (1 - beta)
    lif = nir.LIF(tau=ones(n, tau), r=ones(n, tau / dt), v_leak=ones(n, 0.0), v_threshold=ones(n), v_reset=ones(n, 0.0))
    w_rec = rng.integers(-16, 16, (n, n)) / 64
    recurrent = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n])}),
            "lif": lif,
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    leaky = nir.LIF(tau=ones(2, tau), r=ones(2, tau / dt), v_leak=ones(2, 0.0), v_threshold=ones(2), v_reset=ones(2, 0.0))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4])}),
        "0": nir.Affine(weight=rng.integers(0, 32, (n, 4)) / 64, bias=np.zeros(n)),
        "1": recurrent,
        "2": nir.Linear(weight=rng.integers(0, 32, (2, n)) / 64),
        "3": leaky,
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_a_recurrent_subgraph_as_snntorch_writes_it_imports_as_a_graph_its_weights_reading_last_steps_spikes() -> None:
    network, shape = nir_to_network(rleaky_as_snntorch_writes_it(), dt=1e-4)
    assert shape == (4,)
    names = [node["name"] for node in network["nodes"]]
    assert names == ["0", "1.lif.scale", "1.lif", "1.w_rec", "2", "3.scale", "3"]
    assert [(e["from"], e["to"]) for e in network["edges"] if e.get("delay") == 1] == [("1.lif", "1.w_rec")]
    request = {"dt": 1e-4, "network": network, "input": {"type": "poisson", "rates": 3000.0, "shape": [4], "steps": 300}}
    parsed, plan = parse_request(request)
    assert plan.graph is not None and plan.graph.pass_steps == 1
    result = simulate(parsed, plan)
    assert result.layers["1.lif"].spike_count > 50 and result.layers["3"].spike_count > 0


def graph_request() -> dict[str, Any]:
    rng = np.random.default_rng(6)
    return {
        "dt": 1e-3,
        "seed": 3,
        "input": {"type": "poisson", "rates": 200.0, "shape": [5], "steps": 200},
        "network": {
            "nodes": [
                {"name": "P", "type": "lif", "size": 8, "params": {"v_th": 0.3}},
                {"name": "Q", "type": "lifbox", "size": 8, "params": {"tau_mem_inv": 50.0}},
                {"name": "R", "type": "lif", "size": 3},
            ],
            "edges": [
                {"from": "input", "to": "P", "type": "dense", "weight": (rng.integers(0, 48, (8, 5)) / 64).tolist()},
                {"from": "P", "to": "Q", "type": "one_to_one", "weight": 1.5},
                {"from": "Q", "to": "P", "type": "fixed_in_degree", "k": 3, "weight": -0.25, "delay": 1},
                {"from": "P", "to": "R", "type": "dense", "weight": {"init": "uniform", "low": 0.0, "high": 0.5}},
                {"from": "Q", "to": "R", "type": "sparse", "pre": [0, 1, 2], "post": [0, 1, 2], "weight": [0.5, 0.25, 0.125]},
            ],
        },
        "record": {"spikes": ["P", "Q", "R"]},
    }  # fmt: skip


def test_a_graph_exports_and_imports_back_to_the_same_results_bit_for_bit() -> None:
    request = graph_request()
    parsed, plan = parse_request(request)
    first = simulate(parsed, plan)
    assert first.layers["P"].spike_count > 100 and first.layers["R"].spike_count > 0
    exported = nir.read(io.BytesIO(network_to_nir_bytes(parsed, plan)))  # written and read as a file
    assert {name for name, node in exported.nodes.items() if isinstance(node, nir.Output)} == {"output_P", "output_Q", "output_R"}
    again, _ = nir_to_network(exported, dt=request["dt"])
    assert "nodes" in again
    assert_same_recordings(simulate(*parse_request({**request, "network": again})), first)


def test_graph_delays_without_a_nir_form_are_refused_on_export() -> None:
    request = graph_request()
    request["network"]["edges"][2]["delay"] = 2
    with pytest.raises(NIRError, match="a delay of 2 steps has no NIR form"):
        network_to_nir_bytes(*parse_request(request))
    request["network"]["edges"][2]["delay"] = 1
    request["network"]["edges"][0]["delay"] = 1  # not on a loop
    with pytest.raises(NIRError, match="every edge that closes a loop needs a delay of 1"):
        network_to_nir_bytes(*parse_request(request))


def test_a_graph_nir_file_in_a_request_runs_as_its_graph() -> None:
    request = graph_request()
    parsed, plan = parse_request(request)
    data = base64.b64encode(network_to_nir_bytes(parsed, plan)).decode()
    from_file, file_plan = parse_request({**request, "network": {"nir": data}})
    assert file_plan.graph is not None
    weights = ["P_to_Q", "P_to_R", "Q_to_P", "Q_to_R", "input_to_P"]  # an edge's weights: a node of its own
    assert sorted(layer.name for layer in file_plan.layers) == sorted(["P", "Q", "R", *weights])
    assert_same_recordings(simulate(from_file, file_plan), simulate(parsed, plan))


@pytest.mark.parametrize("kind", ["RLeaky", "RSynaptic"])
def test_a_recurrent_layers_bias_reaches_its_neurons_in_the_first_step_as_in_snntorch(kind: str) -> None:
    """snnTorch's RLeaky and RSynaptic add ``recurrent(spk)`` of the step before, bias included,
    from the first step: written as NIR (a subgraph with the loop lif -> w_rec -> lif), imported,
    the membrane follows snnTorch's step for step (threshold out of reach: no reset to differ)."""
    snntorch = pytest.importorskip("snntorch")
    dt, alpha, beta, n, steps = 1e-4, 0.5, 0.5, 3, 12
    torch.manual_seed(1)
    fc = torch.nn.Linear(4, n)
    x = torch.rand(steps, 4) * 0.2
    if kind == "RLeaky":
        neuron = snntorch.RLeaky(beta=beta, linear_features=n, threshold=1e9, reset_mechanism="zero")
        spk, mem = neuron.init_rleaky()
        tau = dt / (1 - beta)
        node = nir.LIF(tau=ones(n, tau), r=ones(n, tau / dt), v_leak=ones(n, 0.0), v_threshold=ones(n, 1e9), v_reset=ones(n, 0.0))
    else:
        neuron = snntorch.RSynaptic(alpha=alpha, beta=beta, linear_features=n, threshold=1e9, reset_mechanism="zero")
        spk, syn, mem = neuron.init_rsynaptic()
        tau_syn, tau_mem = dt / (1 - alpha), dt / (1 - beta)
        node = nir.CubaLIF(
            tau_syn=ones(n, tau_syn), tau_mem=ones(n, tau_mem), r=ones(n, tau_mem / dt), v_leak=ones(n, 0.0),
            v_threshold=ones(n, 1e9), v_reset=ones(n, 0.0), w_in=ones(n, tau_syn / dt),
        )  # fmt: skip
    with torch.no_grad():
        neuron.recurrent.weight.zero_()
        neuron.recurrent.bias.fill_(1.0)
        trace = []
        for x_t in x:
            if kind == "RLeaky":
                spk, mem = neuron(fc(x_t), spk, mem)
            else:
                spk, syn, mem = neuron(fc(x_t), spk, syn, mem)
            trace.append(mem.clone())
    theirs = torch.stack(trace).numpy()
    recurrent = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n])}),
            "lif": node,
            "w_rec": nir.Affine(weight=np.zeros((n, n)), bias=np.ones(n)),
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "fc": nir.Affine(weight=fc.weight.detach().numpy(), bias=fc.bias.detach().numpy()),
            "rec": recurrent,
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("input", "fc"), ("fc", "rec"), ("rec", "output")],
        type_check=False,
    )
    network, _ = nir_to_network(graph, dt)
    request = {"dt": dt, "network": network, "input": {"type": "tensor", "shape": [steps, 4], "data": x.tolist()}}
    request["record"] = {"voltages": ["rec.lif"]}
    ours = simulate(*parse_request(request)).layers["rec.lif"].voltages
    np.testing.assert_allclose(theirs[0], fc(x[0]).detach().numpy() + 1.0, rtol=1e-6)  # the bias, in the first step
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def sinabs_style_if_cnn(r: float = 1.0) -> nir.NIRGraph:
    """A spiking CNN as Sinabs writes one: Conv2d -> IF -> SumPool2d -> Flatten -> Linear -> IF, with
    r = 1 and thresholds of 1, whose IF nodes Sinabs runs as v += r I per step."""
    rng = np.random.default_rng(2)
    conv = nir.Conv2d(
        input_shape=(8, 8), weight=rng.uniform(0.0, 0.6, (4, 1, 3, 3)), stride=1, padding=1, dilation=1, groups=1,
        bias=np.zeros(4),
    )  # fmt: skip
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "conv": conv,
        "if1": nir.IF(r=np.full((4, 8, 8), r), v_threshold=np.ones((4, 8, 8)), v_reset=np.zeros((4, 8, 8))),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=rng.uniform(0.0, 0.3, (5, 64))),
        "if2": nir.IF(r=np.full(5, r), v_threshold=np.ones(5), v_reset=np.zeros(5)),
        "output": nir.Output(output_type={"output": np.array([5])}),
    }
    order = ["input", "conv", "if1", "pool", "flat", "fc", "if2", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order)), type_check=False)


def test_if_nodes_read_continuously_or_per_step_as_the_import_says_and_a_silent_reading_is_named() -> None:
    graph, dt, steps = sinabs_style_if_cnn(), 1e-3, 50
    spikes = {"type": "poisson", "rates": 300.0, "shape": [1, 8, 8], "steps": steps}
    results = {}
    for reading in ("continuous", "per_step"):
        network, _ = nir_to_network(graph, dt, ImportOptions(if_input=reading))
        gains = [layer["weight"] for layer in network["layers"] if layer["name"] == "if1.scale"]
        assert gains == ([pytest.approx(dt)] if reading == "continuous" else [])  # r dt, or r = 1 left out
        result = simulate(*parse_request({"dt": dt, "network": network, "input": spikes, "seed": 1}))
        results[reading] = (result.layers["if1"].spike_count, result.layers["if2"].spike_count)
    assert results["continuous"] == (0, 0) and min(results["per_step"]) > 0
    notes = if_notes(graph, dt, (0.0, 1.0), steps)
    assert [note.split("'")[1] for note in notes] == ["if1"]  # if2's input is if1's spikes: silent already
    assert 'import it with if_input "per_step"' in notes[0] and "cannot spike within 50 steps" in notes[0]
    assert if_notes(graph, dt, (0.0, 1.0), steps=20_000) == []  # long enough, it can spike either way


@pytest.mark.parametrize("reset", ["value", "subtract"])
def test_the_import_says_how_spiking_nodes_reset(reset: str) -> None:
    """A NIR LIF driven over its threshold: with "subtract" the overshoot is kept after a spike."""
    node = nir.LIF(tau=ones(1, 0.01), r=ones(1, 1.0), v_leak=ones(1, 0.0), v_threshold=ones(1, 1.0), v_reset=ones(1, 0.0))
    network, _ = nir_to_network(chain(node, input_shape=(1,)), 1e-3, ImportOptions(reset=reset))
    assert network["layers"][-1]["params"]["reset_method"] == reset
    request = {"dt": 1e-3, "network": network, "input": {"type": "constant", "value": [15.0], "steps": 3}}
    request["record"] = {"voltages": ["n0"]}
    v = simulate(*parse_request(request)).layers["n0"].voltages[:, 0]
    assert v[0] == pytest.approx(0.0 if reset == "value" else 0.5)  # dt/tau * 15 = 1.5 crosses 1 in the first step


def test_a_request_with_a_sinabs_style_graph_is_valid_with_a_warning_and_runs_as_asked() -> None:
    buffer = io.BytesIO()
    nir.write(buffer, sinabs_style_if_cnn())
    network = {"nir": base64.b64encode(buffer.getvalue()).decode()}
    request = {"dt": 1e-3, "network": network, "input": {"type": "poisson", "rates": 300.0, "shape": [1, 8, 8], "steps": 50}}
    parsed, plan = parse_request(request)
    assert [warning.split("'")[1] for warning in plan.warnings] == ["if1"]
    assert simulate(parsed, plan).layers["if1"].spike_count == 0
    per_step = {**request, "network": {**network, "nir_import": {"if_input": "per_step", "reset": "subtract"}}}
    parsed, plan = parse_request(per_step)
    assert plan.warnings == [] and simulate(parsed, plan).layers["if1"].spike_count > 0
    assert all(layer.params.reset_method == "subtract" for layer in parsed.network.layers if layer.type == "iaf")  # type: ignore[union-attr]
    with pytest.raises(InvalidRequest) as refused:
        parse_request({**request, "network": {**network, "nir_import": {"if_input": "sometimes"}}})
    assert refused.value.errors[0].path == "network.nir_import.if_input"
