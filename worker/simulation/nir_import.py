"""NIR (Neuromorphic Intermediate Representation) import: a NIR graph to request layers.

NIR describes networks in continuous time; spikeserve simulates them with explicit Euler steps of
length ``dt``. The mapping (``NIR_MAPPING``, written into docs/requests.md) follows the
convention of the NIR tools of Norse and snnTorch: each step's input value is the sample of the
node's input signal S(t) over that step (a spike is a pulse of height 1 lasting one step). A NIR
node becomes a ``scale`` layer (left out when its factor is 1) followed by an engine model.

Two things NIR leaves open are the importer's choice (``ImportOptions``): how an IF node takes
its input (NIR: ``dv/dt = r S``, so ``r dt S`` per step; Sinabs and Norse's importer add
``r S`` per step), and how the spiking nodes reset (NIR names no method: to ``v_reset``, or by
subtracting ``v_threshold - v_reset``). ``if_notes`` finds IF nodes that the continuous reading
leaves silent where the per-step reading would spike, the usual sign of a graph written by a
per-step tool.

A graph that is one chain from its Input imports as a chain of layers. Any other graph (branches,
sums of inputs, loops; subgraphs such as snnTorch writes for ``RLeaky`` and ``RSynaptic``,
flattened into their parent) imports as a graph network: each NIR node becomes the node or nodes
its row names (a population for a neuron, a layer node for the rest), joined by identity edges,
and the Input becomes the request's top-level ``input``. NIR's edges carry no delay; a loop, as
the tools that write one simulate it, feeds back the spikes of the step before: its recurrent
weights read the previous step's spikes, and everything else in the step is current (a bias of
the recurrent weights reaches the neurons in the first step). So the one-step delay goes on the
edge that carries spikes into the loop's weights (``loop_delays``), not on the edge that closes
the loop (the latter delayed the bias a step; Norse's importer does so too).
"""

import base64
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.registry import MODELS
from worker.simulation.nir_file import NIRError, read_nir_dict

__all__ = ["ImportOptions", "NIRError", "if_notes", "nir_to_network", "read_graph"]

# node, its equations, what it becomes (the reference of docs/requests.md shows this table)
NIR_MAPPING = [
    ("LIF(tau, r, v_leak, v_threshold, v_reset)", "tau dv/dt = (v_leak - v) + r S",
     "scale(r), lifbox(tau_mem_inv = 1/tau, v_leak, v_th, v_reset): v += dt/tau ((v_leak - v) + r S)"),
    ("CubaLIF(tau_syn, tau_mem, r, w_in, v_leak, v_threshold, v_reset)",
     "tau_syn dI/dt = -I + w_in S, tau_mem dv/dt = (v_leak - v) + r I",
     "scale(r w_in dt / tau_syn), lif(tau_syn_inv = 1/tau_syn, tau_mem_inv = 1/tau_mem, ...): the current jumps, "
     "then decays (Norse's order, snnTorch's Synaptic)"),
    ("LI(tau, r, v_leak)", "tau dv/dt = (v_leak - v) + r S", "scale(r), li(tau_syn_inv = 1/dt, tau_mem_inv = 1/tau, v_leak)"),
    ("CubaLI(tau_syn, tau_mem, r, w_in, v_leak)", "as CubaLIF, without threshold", "scale(r w_in dt / tau_syn), li(...)"),
    ("IF(r, v_threshold, v_reset)", "dv/dt = r S",
     'scale(r dt), iaf(v_th, v_reset) with if_input "continuous"; scale(r), iaf with "per_step" (Sinabs, Norse)'),
    ("Threshold(threshold)", "z = H(S - threshold)", "threshold"),
    ("Affine(weight, bias), Linear(weight)", "W S + b", "linear (with, without bias)"),
    ("Scale(scale)", "scale S", "scale"),
    ("Conv1d, Conv2d", "", "conv1d, conv2d (dilation 1, groups 1, numeric padding)"),
    ("AvgPool2d, SumPool2d", "", "avgpool2d; a sum adds scale(kh kw)"),
    ("Flatten", "", "flatten (all dimensions)"),
    ("Input, Output", "", "the request's input; the recorded layers"),
    ("I, Delay", "", "refused, naming the node (no layer outputs an integrator's unreset voltage; delays come from loops)"),
]  # fmt: skip
SPIKING_NODES = ("LIF", "CubaLIF", "IF")  # the nodes the reset option applies to


@dataclass(frozen=True)
class ImportOptions:
    """What NIR leaves to the importer: ``if_input`` "continuous" (NIR's dv/dt = r S: r dt S per
    step) or "per_step" (r S per step, as Sinabs and Norse's importer read IF); ``reset`` of
    the LIF, CubaLIF and IF nodes: "value" (to v_reset) or "subtract" (v_threshold - v_reset
    taken off, the overshoot kept)."""

    if_input: str = "continuous"
    reset: str = "value"


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


def _depth_first(names: list[str], edges: list[tuple[str, str]], start: list[str]) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """A depth-first walk from ``start`` (then from any node not reached), following ``edges``
    in their order: the edges that close a loop (each points at a node still on the walk's path),
    and each reached node's parent on the walk."""
    successors: dict[str, list[str]] = {name: [] for name in names}
    for source, target in edges:
        successors[source].append(target)
    found: set[tuple[str, str]] = set()
    parent: dict[str, str] = {}
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
                parent[reached] = node
                stack.append((reached, iter(successors[reached])))
    return found, parent


def back_edges(names: list[str], edges: list[tuple[str, str]], start: list[str]) -> set[tuple[str, str]]:
    """The edges that close a loop in a depth-first walk from ``start``, following ``edges`` in
    their order: each points at a node still on the walk's path."""
    return _depth_first(names, edges, start)[0]


def loop_delays(names: list[str], edges: list[tuple[str, str]], start: list[str], neurons: set[str]) -> set[tuple[str, str]]:
    """The edges that get a one-step delay: for each edge that closes a loop, the edge by which
    the spikes of the loop's last neuron before it enter the weights that close it (walking the
    loop back from that edge to a node in ``neurons``); the closing edge itself when it leaves a
    neuron, or when the loop has none (a graph then refused by the check)."""
    closing, parent = _depth_first(names, edges, start)
    delayed: set[tuple[str, str]] = set()
    for source, target in closing:
        edge, node = (source, target), source
        while node not in neurons and node != target and node in parent:
            edge, node = (parent[node], node), parent[node]
        delayed.add(edge if node in neurons else (source, target))
    return delayed


def is_neuron(node: Any) -> bool:
    """A node with a membrane: the loops' one-step delay goes on the spikes that leave one."""
    return type(node).__name__ in (*SPIKING_NODES, "LI", "CubaLI")


def _import_node(name: str, node: Any, dt: float, options: ImportOptions) -> list[dict[str, Any]]:
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
        params: dict[str, Any] = {"tau_mem_inv": _param(1 / _array(node.tau)), "v_leak": _param(node.v_leak)}
        params |= {"v_th": _param(node.v_threshold), "v_reset": _param(node.v_reset), "reset_method": options.reset}
        return [*_scale(layer, _array(node.r)), {"type": "lifbox", "name": layer, "params": params}]
    if isinstance(node, nir.CubaLIF):
        params = {"tau_syn_inv": _param(1 / _array(node.tau_syn)), "tau_mem_inv": _param(1 / _array(node.tau_mem))}
        params |= {"v_leak": _param(node.v_leak), "v_th": _param(node.v_threshold), "v_reset": _param(node.v_reset)}
        params["reset_method"] = options.reset
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
        params = {"v_th": _param(node.v_threshold), "v_reset": _param(node.v_reset)} | {"reset_method": options.reset}
        gain = _array(node.r) * (dt if options.if_input == "continuous" else 1.0)
        return [*_scale(layer, gain), {"type": "iaf", "name": layer, "params": params}]
    raise NIRError(f"node {name!r} ({type(node).__name__}) has no counterpart in spikeserve")


def as_pair(value: Any) -> list[int]:
    array = np.atleast_1d(np.asarray(value, dtype=np.int64))
    return [int(array[0])] * 2 if array.size == 1 else [int(v) for v in array[:2]]


def nir_to_network(
    graph: Any, dt: float = 0.001, options: ImportOptions = ImportOptions()
) -> tuple[dict[str, Any], tuple[int, ...] | None]:
    """A NIR graph -> (spikeserve network definition, per-sample input shape if the graph says)."""
    import nir

    if not dt > 0:
        raise NIRError(f"dt must be positive, got {dt}")
    if options.if_input not in ("continuous", "per_step") or options.reset not in ("value", "subtract"):
        raise NIRError(f"unknown import options {options}")
    nodes, edges = _flatten(graph)
    chain = _chain(nodes, edges)
    input_name = next(name for name, node in nodes.items() if isinstance(node, nir.Input))
    shape = nodes[input_name].input_type.get("input")
    input_shape = None if shape is None else tuple(int(v) for v in np.asarray(shape))
    if chain is not None:
        layers: list[dict[str, Any]] = []
        for name in chain:
            layers += _import_node(name, nodes[name], dt, options)
        if not layers:
            raise NIRError("the graph has no computational nodes")
        return {"layers": layers}, input_shape
    return _graph_network(nodes, edges, input_name, dt, options), input_shape


def _population_size(name: str, node: Any) -> list[int]:
    """A neuron node's shape: its declared input type, else the shape of its parameters."""
    declared = node.input_type.get("input") if getattr(node, "input_type", None) else None
    if declared is not None and np.asarray(declared).size:
        return [int(v) for v in np.asarray(declared)]
    for value in node.__dict__.values():
        if isinstance(value, np.ndarray) and value.ndim:
            return list(value.shape)
    raise NIRError(f"node {name!r}: its number of neurons is not given (scalar parameters and no input type)")


def _graph_network(
    nodes: dict[str, Any], edges: list[tuple[str, str]], input_name: str, dt: float, options: ImportOptions
) -> dict[str, Any]:
    """A NIR graph that is not one chain -> a graph network (see the module's docstring)."""
    import nir

    out_nodes: list[dict[str, Any]] = []
    out_edges: list[dict[str, Any]] = []
    first: dict[str, str] = {input_name: "input"}
    last: dict[str, str] = {input_name: "input"}
    for name, node in nodes.items():
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        items = _import_node(name, node, dt, options)
        for item in items:
            if item["type"] in MODELS:
                item["size"] = _population_size(name, node)
            out_nodes.append(item)
        for before, after in itertools.pairwise(items):
            out_edges.append({"from": before["name"], "to": after["name"], "type": "identity"})
        first[name], last[name] = items[0]["name"], items[-1]["name"]
    looping = loop_delays(list(nodes), edges, [input_name], {name for name, node in nodes.items() if is_neuron(node)})
    for source, target in edges:
        if isinstance(nodes[target], nir.Output):
            continue
        if isinstance(nodes[target], nir.Input):
            raise NIRError(f"edge {source!r} -> {target!r} leads into the Input")
        delay = 1 if (source, target) in looping else 0
        out_edges.append({"from": last[source], "to": first[target], "type": "identity", "delay": delay})
    if not any(item["type"] in MODELS for item in out_nodes):
        raise NIRError("the graph has no neuron node")
    return {"nodes": out_nodes, "edges": out_edges}


# --- IF nodes that a continuous reading silences --------------------------------------------------

Bounds = tuple[float, float]  # the least and the most a node's outputs can be, any feature, any step
UNBOUNDED: Bounds = (-math.inf, math.inf)


def _weight_bounds(weight: np.ndarray, bias: np.ndarray | None, into: Bounds) -> Bounds:
    """Of ``weight @ x + bias`` over inputs in ``into``, per output the sums of its positive and
    negative weights at the worse ends; across outputs the extremes. Row = output."""
    rows = weight.reshape(weight.shape[0], -1)
    positive, negative = np.clip(rows, 0, None).sum(axis=1), np.clip(rows, None, 0).sum(axis=1)
    bias = np.zeros(len(rows)) if bias is None else np.broadcast_to(np.asarray(bias, dtype=np.float64), (len(rows),))
    with np.errstate(invalid="ignore"):
        low = positive * into[0] + negative * into[1] + bias
        high = positive * into[1] + negative * into[0] + bias
    return float(np.nan_to_num(low, nan=-math.inf).min()), float(np.nan_to_num(high, nan=math.inf).max())


def _output_bounds(node: Any, into: Bounds) -> Bounds:
    kind = type(node).__name__
    if kind in (*SPIKING_NODES, "Threshold"):
        return (0.0, 1.0)
    if kind in ("Affine", "Linear"):
        return _weight_bounds(_array(node.weight), _array(node.bias) if kind == "Affine" else None, into)
    if kind in ("Conv1d", "Conv2d"):
        return _weight_bounds(_array(node.weight), _array(node.bias), into)
    if kind == "Scale":
        factor = _array(node.scale)
        products = (factor.min() * into[0], factor.min() * into[1], factor.max() * into[0], factor.max() * into[1])
        ends = [float(value) for value in products]
        return UNBOUNDED if any(math.isnan(end) for end in ends) else (min(ends), max(ends))
    if kind == "SumPool2d":
        area = float(np.prod(as_pair(node.kernel_size)))
        return (into[0] * area, into[1] * area)
    if kind in ("AvgPool2d", "Flatten", "Output"):
        return into
    return UNBOUNDED  # LI, CubaLI (voltages), and anything else: no claim


def if_notes(graph: Any, dt: float, input_bounds: Bounds = (0.0, 1.0), steps: int | None = None) -> list[str]:
    """For each IF node that, read as NIR defines it (r dt S per step), cannot reach its threshold
    within ``steps`` steps (default 1,000) even under the largest input the graph can carry from
    an input within ``input_bounds``, but read per step (r S, as Sinabs and Norse write IF) can:
    a note saying so. Bounds are propagated through the weights (the worst case of every input at
    its worse end), so a note is certain, never a guess; silence is not looked for past nodes
    that output voltages (LI, CubaLI)."""
    nodes, edges = _flatten(graph)
    inputs = [name for name, node in nodes.items() if type(node).__name__ == "Input"]
    steps = steps or 1000
    bounds: dict[str, Bounds] = {name: input_bounds for name in inputs}
    order = [name for name in _walk_order(list(nodes), edges, inputs) if name not in bounds]
    notes = []
    for name in order:
        into = [
            bounds.get(source, (0.0, 1.0) if is_neuron(nodes[source]) else UNBOUNDED)
            for source, target in edges
            if target == name
        ]
        total = (sum(low for low, _ in into), sum(high for _, high in into)) if into else (0.0, 0.0)
        node = nodes[name]
        bounds[name] = _output_bounds(node, total)
        if type(node).__name__ != "IF" or not 0 < total[1] < math.inf:
            continue
        per_step = float(_array(node.r).max()) * total[1]
        distance = float((_array(node.v_threshold) - _array(node.v_reset)).min())
        if per_step <= 0 or distance <= 0:
            continue
        continuous_steps, per_step_steps = distance / (per_step * dt), distance / per_step
        if continuous_steps > steps >= per_step_steps:
            notes.append(
                f"IF node {name!r} cannot spike within {steps:,} steps at dt = {dt:g} s: read as NIR defines IF "
                f"(dv/dt = r I), each step adds at most {per_step * dt:.3g} to its voltage, {math.ceil(continuous_steps):,} "
                f"steps to its threshold; read per step, as Sinabs and Norse's importer write IF, it adds up to "
                f"{per_step:.3g} and can spike after {max(1, math.ceil(per_step_steps)):,}. If the graph comes from such a "
                f'tool, import it with if_input "per_step"'
            )
    return notes


def _walk_order(names: list[str], edges: list[tuple[str, str]], start: list[str]) -> list[str]:
    """The nodes in the order of a depth-first walk's finishing, reversed (a topological order of
    the edges that do not close a loop)."""
    closing = back_edges(names, edges, start)
    forward = [edge for edge in edges if edge not in closing]
    waiting = {name: {s for s, t in forward if t == name} for name in names}
    order: list[str] = []
    while len(order) < len(names):
        ready = next(name for name in names if name not in order and not waiting[name] - set(order))
        order.append(ready)
    return order
