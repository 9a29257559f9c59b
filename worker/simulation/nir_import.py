"""NIR (Neuromorphic Intermediate Representation) import: a NIR graph to request layers.

NIR describes networks in continuous time; spikeserve simulates them with explicit Euler steps of
length ``dt``. The mapping below follows the convention of the NIR tools of Norse and snnTorch:
each step's input value is the sample of the node's input signal S(t) over that step (a spike is
a pulse of height 1 lasting one step). Under it a NIR node becomes a ``scale`` layer (left out
when its factor is 1) followed by an engine model:

    NIR node                                   spikeserve layers
    LIF(tau, r, v_leak, v_threshold, v_reset)  scale(r), lifbox(tau_mem_inv=1/tau, ...)
    CubaLIF(tau_syn, tau_mem, r, w_in, ...)    scale(r*w_in*dt/tau_syn), lif(tau_syn_inv=1/tau_syn, tau_mem_inv=1/tau_mem, ...)
    LI(tau, r, v_leak)                         scale(r), li(tau_syn_inv=1/dt, tau_mem_inv=1/tau, v_leak)
    CubaLI(tau_syn, tau_mem, r, w_in, v_leak)  scale(r*w_in*dt/tau_syn), li(tau_syn_inv=1/tau_syn, tau_mem_inv=1/tau_mem, v_leak)
    IF(r, v_threshold, v_reset)                scale(r*dt), iaf(v_th, v_reset)
    Affine / Linear                            linear (with / without bias)
    Scale                                      scale
    Conv1d / Conv2d                            conv1d / conv2d (dilation 1, groups 1)
    Threshold(threshold)                       threshold (stateless spikes where input > threshold)
    AvgPool2d / SumPool2d                      avgpool2d / avgpool2d + scale(kh*kw)
    Flatten (all dimensions)                   flatten

The LIF and LI rows are the exact Euler steps of ``tau dv/dt = (v_leak - v) + r S``. In the
current-based rows the synaptic current jumps by ``dt/tau_syn * w_in * S`` and then decays, the
order of Norse's (and snnTorch's ``Synaptic``) discrete step, so snnTorch's exports reproduce its
own dynamics exactly. Export writes the inverse mapping, so export then import is the identity.
Nodes without an honest counterpart (I, an integrator whose output is its voltage; Delay) are
refused with an error that names the node.

A graph that is one chain from its Input imports as a chain of layers. Any other graph (branches,
sums of inputs, loops; subgraphs such as snnTorch writes for ``RLeaky`` and ``RSynaptic``,
flattened into their parent) imports as a graph network: each NIR node becomes the node or nodes
its row above names (a population for a neuron, a layer node for the rest), joined by identity
edges, and the Input becomes the request's top-level ``input``. NIR's edges carry no delay; a
loop, as the tools that write one simulate it, feeds back what was computed one step earlier, so
each edge that closes a loop (a back edge of a depth-first walk from the Input, in the graph's
order of edges) gets a delay of one step.
"""

import base64
import itertools
import re
from typing import Any

import numpy as np

from worker.simulation.nir_file import NIRError, read_nir_dict

__all__ = ["NIRError", "nir_bytes_to_network", "nir_to_network", "read_graph"]
DEFAULT_MAX_BYTES = 512 * 2**20  # the engine's own default input limit; the service passes its own
NAME_INVALID = re.compile(r"[^A-Za-z0-9_.\-]")


def _array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _tensor(values: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(values, dtype="<f4")
    return {"dtype": "float32", "shape": list(array.shape), "base64": base64.b64encode(array.tobytes()).decode()}


def _param(values: Any) -> float | list:
    """A parameter as JSON: one number when all neurons share it."""
    array = np.asarray(values, dtype=np.float64)
    if array.size and np.all(array == array.flat[0]):
        return float(np.float32(array.flat[0]))
    return array.astype(np.float32).tolist()


def _scale(name: str, factor: np.ndarray) -> list[dict[str, Any]]:
    factor = np.asarray(factor, dtype=np.float64)
    if np.all(factor.astype(np.float32) == 1.0):
        return []
    return [{"type": "scale", "name": f"{name}.scale", "weight": _param(factor)}]


def layer_name(name: str) -> str:
    """A node name as a valid layer name (worker.simulation.request.NAME_PATTERN): other characters become
    '_', and a name may not start with '.' or '-'."""
    clean = NAME_INVALID.sub("_", str(name))
    if not clean or clean[0] in ".-":
        clean = "_" + clean
    return clean[:64]


# --- import -------------------------------------------------------------------------------------


def read_graph(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """A NIR graph from the bytes of a NIR (HDF5) file, read safely (see worker.simulation.nir_file) and
    type-checked. ``max_bytes`` bounds the data the file may declare, all datasets together."""
    import nir

    data_dict = read_nir_dict(data, max_bytes)
    if "type_check" in data_dict:
        raise NIRError("not a NIR file: its graph has a 'type_check' entry")
    try:
        return nir.dict2NIRNode({**data_dict, "type_check": True})
    except Exception as error:  # nir raises many kinds; all mean "not a NIR graph we can read"
        raise NIRError(f"not a readable NIR graph ({type(error).__name__}: {error})") from None


def _flatten(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The graph's nodes and edges with every subgraph's nodes in place of it (``sub.node``), and
    a subgraph's own Input and Output nodes bridged: what reached the subgraph reaches its Input's
    successors, what its Output received leaves it."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    inner: list[str] = []
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten(node, f"{prefix}{name}.")
            nodes |= sub_nodes
            edges += sub_edges
            inner += [f"{prefix}{name}.{n}" for n, v in node.nodes.items() if isinstance(v, (nir.Input, nir.Output))]
        else:
            nodes[prefix + name] = node
    for source, target in graph.edges:
        source = f"{source}.output" if isinstance(graph.nodes.get(source), nir.NIRGraph) else source
        target = f"{target}.input" if isinstance(graph.nodes.get(target), nir.NIRGraph) else target
        edges.append((prefix + source, prefix + target))
    for bridge in inner:  # a subgraph's Input or Output: its predecessors feed its successors
        before = [s for s, t in edges if t == bridge]
        after = [t for s, t in edges if s == bridge]
        edges = [(s, t) for s, t in edges if bridge not in (s, t)] + [(s, t) for s in before for t in after]
        del nodes[bridge]
    return nodes, edges


def _chain(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> list[str] | None:
    """Node names from the Input to the end, or None if the graph is not one chain."""
    import nir

    inputs = [name for name, node in nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise NIRError(f"the graph needs exactly one Input node, found {len(inputs)}")
    successors: dict[str, list[str]] = {name: [] for name in nodes}
    for source, target in edges:
        successors[source].append(target)
    predecessors = [target for _, target in edges]
    if len(set(predecessors)) != len(predecessors):
        return None  # a node with two inputs
    order, current, seen = [], inputs[0], {inputs[0]}
    while successors[current]:
        if len(successors[current]) > 1:
            return None
        current = successors[current][0]
        if current in seen:
            return None
        seen.add(current)
        order.append(current)
    return order if len(seen) == len(nodes) else None


def back_edges(names: list[str], edges: list[tuple[str, str]], start: list[str]) -> set[tuple[str, str]]:
    """The edges that close a loop in a depth-first walk from ``start``, following ``edges`` in
    their order: each points at a node still on the walk's path."""
    successors: dict[str, list[str]] = {name: [] for name in names}
    for source, target in edges:
        successors[source].append(target)
    found: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for root in [*start, *names]:
        if root in state:
            continue
        stack = [(root, iter(successors[root]))]
        state[root] = 1
        while stack:
            node, following = stack[-1]
            reached = next(following, None)
            if reached is None:
                state[node] = 2
                stack.pop()
            elif state.get(reached) == 1:
                found.add((node, reached))
            elif reached not in state:
                state[reached] = 1
                stack.append((reached, iter(successors[reached])))
    return found


def _import_node(name: str, node: Any, dt: float) -> list[dict[str, Any]]:
    import nir

    layer = layer_name(name)
    if isinstance(node, nir.Output):
        return []
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = _array(node.weight)
        if weight.ndim != 2:
            raise NIRError(f"node {name!r}: only 2-d weights are supported, got shape {list(weight.shape)}")
        spec: dict[str, Any] = {"type": "linear", "name": layer, "in_features": weight.shape[1], "out_features": weight.shape[0]}
        spec["weight"] = _tensor(weight)
        spec["bias"] = _tensor(_array(node.bias)) if isinstance(node, nir.Affine) else False
        return [spec]
    if isinstance(node, nir.Scale):
        return [{"type": "scale", "name": layer, "weight": _param(node.scale)}]
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        kind = "conv1d" if isinstance(node, nir.Conv1d) else "conv2d"
        if np.any(np.asarray(node.dilation) != 1) or node.groups != 1 or isinstance(node.padding, str):
            raise NIRError(f"node {name!r}: {kind} with dilation, groups or string padding is not supported")
        weight = _array(node.weight)
        kernel: Any = list(weight.shape[2:])
        stride: Any = as_pair(node.stride)
        padding: Any = as_pair(node.padding)
        if kind == "conv1d":  # one spatial dimension: plain integers
            kernel, stride, padding = kernel[0], stride[0], padding[0]
        return [
            {
                "type": kind, "name": layer, "in_channels": weight.shape[1], "out_channels": weight.shape[0],
                "kernel_size": kernel, "stride": stride, "padding": padding,
                "weight": _tensor(weight), "bias": _tensor(_array(node.bias)),
            }
        ]  # fmt: skip
    if isinstance(node, nir.Threshold):
        return [{"type": "threshold", "name": layer, "threshold": _param(node.threshold)}]
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        kernel = as_pair(node.kernel_size)
        pool = {
            "type": "avgpool2d",
            "name": layer,
            "kernel_size": kernel,
            "stride": as_pair(node.stride),
            "padding": as_pair(node.padding),
        }
        if isinstance(node, nir.SumPool2d):
            return [pool, {"type": "scale", "name": f"{layer}.sum", "weight": float(kernel[0] * kernel[1])}]
        return [pool]
    if isinstance(node, nir.Flatten):
        shape = node.input_type.get("input")
        if shape is not None:
            dims = len(np.asarray(shape))
            start, end = node.start_dim % dims, node.end_dim % dims
            if (start, end) != (0, dims - 1):
                raise NIRError(f"node {name!r}: only flattening every dimension is supported")
        return [{"type": "flatten", "name": layer}]
    if isinstance(node, nir.LIF):
        params = {"tau_mem_inv": _param(1 / _array(node.tau)), "v_leak": _param(node.v_leak), "v_th": _param(node.v_threshold)}
        params["v_reset"] = _param(node.v_reset)
        return [*_scale(layer, _array(node.r)), {"type": "lifbox", "name": layer, "params": params}]
    if isinstance(node, nir.CubaLIF):
        params = {"tau_syn_inv": _param(1 / _array(node.tau_syn)), "tau_mem_inv": _param(1 / _array(node.tau_mem))}
        params |= {"v_leak": _param(node.v_leak), "v_th": _param(node.v_threshold), "v_reset": _param(node.v_reset)}
        factor = _array(node.r) * _array(node.w_in) * dt / _array(node.tau_syn)
        return [*_scale(layer, factor), {"type": "lif", "name": layer, "params": params}]
    if isinstance(node, nir.LI):
        params = {"tau_syn_inv": _param(np.full_like(_array(node.tau), 1 / dt)), "tau_mem_inv": _param(1 / _array(node.tau))}
        params["v_leak"] = _param(node.v_leak)
        return [*_scale(layer, _array(node.r)), {"type": "li", "name": layer, "params": params}]
    if isinstance(node, nir.CubaLI):
        params = {"tau_syn_inv": _param(1 / _array(node.tau_syn)), "tau_mem_inv": _param(1 / _array(node.tau_mem))}
        params["v_leak"] = _param(node.v_leak)
        factor = _array(node.r) * _array(node.w_in) * dt / _array(node.tau_syn)
        return [*_scale(layer, factor), {"type": "li", "name": layer, "params": params}]
    if isinstance(node, nir.IF):
        params = {"v_th": _param(node.v_threshold), "v_reset": _param(node.v_reset)}
        return [*_scale(layer, _array(node.r) * dt), {"type": "iaf", "name": layer, "params": params}]
    raise NIRError(f"node {name!r} ({type(node).__name__}) has no counterpart in spikeserve")


def as_pair(value: Any) -> list[int]:
    array = np.atleast_1d(np.asarray(value, dtype=np.int64))
    return [int(array[0])] * 2 if array.size == 1 else [int(v) for v in array[:2]]


def nir_to_network(graph: Any, dt: float = 0.001) -> tuple[dict[str, Any], tuple[int, ...] | None]:
    """A NIR graph -> (spikeserve network definition, per-sample input shape if the graph says)."""
    import nir

    if not dt > 0:
        raise NIRError(f"dt must be positive, got {dt}")
    nodes, edges = _flatten(graph)
    chain = _chain(nodes, edges)
    input_name = next(name for name, node in nodes.items() if isinstance(node, nir.Input))
    shape = nodes[input_name].input_type.get("input")
    input_shape = None if shape is None else tuple(int(v) for v in np.asarray(shape))
    if chain is not None:
        layers: list[dict[str, Any]] = []
        for name in chain:
            layers += _import_node(name, nodes[name], dt)
        if not layers:
            raise NIRError("the graph has no computational nodes")
        return {"layers": layers}, input_shape
    return _graph_network(nodes, edges, input_name, dt), input_shape


NEURON_LAYERS = ("lif", "lifbox", "li", "iaf")


def _population_size(name: str, node: Any) -> list[int]:
    """A neuron node's shape: its declared input type, else the shape of its parameters."""
    declared = node.input_type.get("input") if getattr(node, "input_type", None) else None
    if declared is not None and np.asarray(declared).size:
        return [int(v) for v in np.asarray(declared)]
    for value in node.__dict__.values():
        if isinstance(value, np.ndarray) and value.ndim:
            return list(value.shape)
    raise NIRError(f"node {name!r}: its number of neurons is not given (scalar parameters and no input type)")


def _graph_network(nodes: dict[str, Any], edges: list[tuple[str, str]], input_name: str, dt: float) -> dict[str, Any]:
    """A NIR graph that is not one chain -> a graph network (see the module's docstring)."""
    import nir

    out_nodes: list[dict[str, Any]] = []
    out_edges: list[dict[str, Any]] = []
    first: dict[str, str] = {input_name: "input"}
    last: dict[str, str] = {input_name: "input"}
    for name, node in nodes.items():
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        items = _import_node(name, node, dt)
        for item in items:
            if item["type"] in NEURON_LAYERS:
                item["size"] = _population_size(name, node)
            out_nodes.append(item)
        for before, after in itertools.pairwise(items):
            out_edges.append({"from": before["name"], "to": after["name"], "type": "identity"})
        first[name], last[name] = items[0]["name"], items[-1]["name"]
    looping = back_edges(list(nodes), edges, [input_name])
    for source, target in edges:
        if isinstance(nodes[target], nir.Output):
            continue
        if isinstance(nodes[target], nir.Input):
            raise NIRError(f"edge {source!r} -> {target!r} leads into the Input")
        delay = 1 if (source, target) in looping else 0
        out_edges.append({"from": last[source], "to": first[target], "type": "identity", "delay": delay})
    if not any(item["type"] in NEURON_LAYERS for item in out_nodes):
        raise NIRError("the graph has no neuron node")
    return {"nodes": out_nodes, "edges": out_edges}


def nir_bytes_to_network(data: bytes, dt: float = 0.001, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    return nir_to_network(read_graph(data, max_bytes), dt)[0]


# --- export -------------------------------------------------------------------------------------
