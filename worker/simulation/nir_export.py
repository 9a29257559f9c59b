"""NIR export: a request's network, as built, to a NIR graph (the inverse of
``worker.simulation.nir_import``'s mapping, so export then import is the identity).

A graph network exports node for node: inputs as Input nodes, populations and layer nodes as
their NIR nodes, identity edges as edges, and every other edge as a weight node between its two
ends (``dense`` and the sparse rules as ``Linear`` with the synapses' weights in a dense matrix,
``one_to_one`` as ``Scale``); each recorded population gets an Output. NIR's edges carry no delay,
and a loop feeds back the spikes of the step before: so an edge may have a delay of 0, or of 1
where the importer puts a loop's delay (``loop_delays``: on a population's spikes); anything else
is refused, naming the edge.
"""

import io
import itertools
from typing import Any

import numpy as np
import torch

from worker.registry import MODELS
from worker.simulation.build import build_network
from worker.simulation.graph_runner import GraphRun
from worker.simulation.nir_file import NIRError
from worker.simulation.nir_import import as_pair, is_neuron, layer_name, loop_delays

__all__ = ["network_to_nir", "network_to_nir_bytes"]


def network_to_nir(request: Any, plan: Any) -> Any:
    """A validated request's network (weights as built from its seed) -> a type-checked NIR graph."""
    import nir

    if plan.graph is not None:
        return _graph_to_nir(request, plan)
    dt = request.dt
    modules = list(build_network(request, plan))
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.asarray(plan.input_shape)})}
    order = ["input"]
    for layer, layer_plan, module in zip(request.network.layers, plan.layers, modules, strict=True):
        nodes[layer_plan.name] = _export_layer(layer, layer_plan, module, dt)
        order.append(layer_plan.name)
    nodes["output"] = nir.Output(output_type={"output": np.asarray(plan.layers[-1].out_shape)})
    order.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order)), metadata={"source": "spikeserve", "dt": dt})


MAX_DENSE_WEIGHTS = 50_000_000  # a sparse edge written as NIR's dense Linear: 200 MB of float32


def _graph_to_nir(request: Any, plan: Any) -> Any:
    import nir

    graph, network, dt = plan.graph, request.network, request.dt
    built = GraphRun(request, plan, torch.device("cpu"), keep=frozenset())
    nodes: dict[str, Any] = {source.name: nir.Input(input_type={"input": np.asarray(source.shape)}) for source in graph.sources}
    for layer in plan.layers:
        nodes[layer.name] = _export_layer(network.nodes[layer.index], layer, built.modules[layer.name], dt)
    edges: list[tuple[str, str]] = []
    delayed: set[tuple[str, str]] = set()
    for edge, runtime in zip(graph.edges, built.edges, strict=True):
        if edge.min_delay != edge.max_delay or edge.max_delay > 1:
            raise NIRError(f"edge {edge.name!r}: a delay of {edge.max_delay} steps has no NIR form (NIR's edges have none)")
        path = [edge.source, edge.target]
        if not runtime.identity:
            name = _free_name(layer_name(edge.name.replace("->", "_to_")), nodes)
            nodes[name] = _edge_weights(edge, runtime)
            path.insert(1, name)
        edges += itertools.pairwise(path)
        if edge.max_delay == 1:
            delayed.add((path[0], path[1]))  # the spikes entering its weights, where the importer puts a loop's delay
    neurons = {name for name, node in nodes.items() if is_neuron(node)}
    if loop_delays(list(nodes), edges, [source.name for source in graph.sources], neurons) != delayed:
        raise NIRError(
            "NIR's loops feed back the spikes of the step before: every edge that closes a loop needs a delay of 1 on the "
            "spikes of a population (not on a layer node's output), and every other edge 0"
        )
    for name in plan.record_spikes:
        output = "output" if len(plan.record_spikes) == 1 else _free_name(f"output_{name}", nodes)
        nodes[output] = nir.Output(output_type={"output": np.asarray(plan.layer(name).out_shape)})
        edges.append((name, output))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"source": "spikeserve", "dt": dt})


def _free_name(name: str, taken: dict[str, Any]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}_{number}"
    return candidate


def _edge_weights(edge: Any, runtime: Any) -> Any:
    """An edge's synapses as a NIR node: Scale for one-to-one, else Linear (target x source)."""
    import nir

    if runtime.elementwise is not None:
        return nir.Scale(scale=np.broadcast_to(runtime.elementwise.numpy(), (edge.n_post,)).astype(np.float32))
    if runtime.dense is not None:
        return nir.Linear(weight=runtime.dense.weight.numpy())
    projection = runtime.projection
    if edge.n_pre * edge.n_post > MAX_DENSE_WEIGHTS:
        raise NIRError(
            f"edge {edge.name!r}: NIR writes its synapses as a dense matrix of {edge.n_post} x {edge.n_pre}, too large"
        )
    weights = projection.weight.expand(projection.synapses) if projection.weight.dim() == 0 else projection.weight
    matrix = torch.zeros(edge.n_post, edge.n_pre, dtype=torch.float32)
    matrix.index_put_((projection.post.long(), projection.pre), weights, accumulate=True)
    return nir.Linear(weight=matrix.numpy())


def _full(plan: Any, values: Any) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64), plan.out_shape).copy()


def _export_layer(layer: Any, plan: Any, module: Any, dt: float) -> Any:
    import nir

    if layer.type == "linear":
        weight = module.weight.numpy()  # float32, as simulated
        bias = module.bias
        return nir.Linear(weight=weight) if bias is None else nir.Affine(weight=weight, bias=bias.detach().numpy())
    if layer.type == "conv2d":
        conv = module
        bias = conv.bias.numpy() if conv.bias is not None else np.zeros(conv.weight.shape[0], dtype=np.float32)
        return nir.Conv2d(
            input_shape=tuple(plan.in_shape[1:]), weight=conv.weight.numpy(),
            stride=tuple(conv.stride), padding=tuple(conv.padding), dilation=1, groups=1, bias=bias,
        )  # fmt: skip
    if layer.type == "conv1d":
        conv = module
        bias = conv.bias.numpy() if conv.bias is not None else np.zeros(conv.weight.shape[0], dtype=np.float32)
        return nir.Conv1d(
            input_shape=int(plan.in_shape[1]), weight=conv.weight.numpy(),
            stride=int(conv.stride[0]), padding=int(conv.padding[0]), dilation=1, groups=1, bias=bias,
        )  # fmt: skip
    if layer.type == "threshold":
        return nir.Threshold(threshold=_full(plan, module.threshold.double().numpy()))
    if layer.type == "avgpool2d":
        pool = module
        return nir.AvgPool2d(
            kernel_size=np.asarray(as_pair(pool.kernel)),
            stride=np.asarray(as_pair(pool.stride)),
            padding=np.asarray(as_pair(pool.padding)),
        )
    if layer.type == "flatten":
        return nir.Flatten(input_type={"input": np.asarray(plan.in_shape)}, start_dim=0, end_dim=-1)
    if layer.type == "scale":
        return nir.Scale(scale=_full(plan, module.factor.double().numpy()))
    if layer.type in MODELS and MODELS[layer.type].nir is not None:
        p = {
            key: (value.detach().double().numpy() if hasattr(value, "detach") else value)
            for key, value in module.p._asdict().items()
        }
        if p.get("reset_method", "value") != "value":
            raise NIRError(f"layer {plan.name!r}: NIR resets to a value; a subtractive reset has no NIR form")
        if p.get("synapse", "current") != "current":
            raise NIRError(f"layer {plan.name!r}: NIR's LIF integrates a current; delta synapses have no NIR form")
        if layer.type == "lif":
            tau_syn = 1 / _full(plan, p["tau_syn_inv"])
            return nir.CubaLIF(
                tau_syn=tau_syn, tau_mem=1 / _full(plan, p["tau_mem_inv"]), r=_full(plan, 1.0), v_leak=_full(plan, p["v_leak"]),
                v_threshold=_full(plan, p["v_th"]), v_reset=_full(plan, p["v_reset"]), w_in=tau_syn / dt,
            )  # fmt: skip
        if layer.type == "lifbox":
            return nir.LIF(
                tau=1 / _full(plan, p["tau_mem_inv"]), r=_full(plan, 1.0), v_leak=_full(plan, p["v_leak"]),
                v_threshold=_full(plan, p["v_th"]), v_reset=_full(plan, p["v_reset"]),
            )  # fmt: skip
        if layer.type == "li":
            tau_syn = 1 / _full(plan, p["tau_syn_inv"])
            return nir.CubaLI(
                tau_syn=tau_syn,
                tau_mem=1 / _full(plan, p["tau_mem_inv"]),
                r=_full(plan, 1.0),
                v_leak=_full(plan, p["v_leak"]),
                w_in=tau_syn / dt,
            )
        return nir.IF(r=_full(plan, 1 / dt), v_threshold=_full(plan, p["v_th"]), v_reset=_full(plan, p["v_reset"]))
    raise NIRError(f"layer {plan.name!r} ({layer.type}) has no NIR counterpart")


def network_to_nir_bytes(request: Any, plan: Any) -> bytes:
    import nir

    buffer = io.BytesIO()
    nir.write(buffer, network_to_nir(request, plan))
    return buffer.getvalue()
