"""The semantic check of a network given as a graph (``network.nodes`` and ``network.edges``).

``validate_graph`` checks what the JSON structure cannot: unique node names, edges between known
nodes (ending at populations), the shape of every edge's arrays, the rules' degrees against the
populations' sizes, delays, cycles, and the job's cost, each error at the path of its field. It
also fixes how the graph runs (``GraphPlan``):

- ``order``: the nodes in the order they run within a pass: an edge with a delay shorter than a
  pass runs its source before its target.
- ``pass_steps``: how many steps every node runs at once. Within a cycle each spike needs at least
  the cycle's smallest delay D to come back, so D steps can run as one pass of every node over
  those steps; a graph without cycles runs a whole chunk in one pass. A cycle whose delays are all
  0 is refused (``network.edges[i].delay`` names one of its edges and the cycle).

This module imports numpy and pydantic, never torch.
"""

import base64
import binascii
import math
import typing
from typing import Any

import numpy as np

from worker.registry import MODELS, SYNAPSE_MODELS
from worker.simulation.binomial import FULL, count_thresholds
from worker.simulation.checks import (
    broadcasts,
    check_neuron_counts,
    check_params,
    check_source,
    decode_tensor,
    infer_layer,
    resolve_record,
    shape_str,
)
from worker.simulation.cost import check_cost, job_cost
from worker.simulation.errors import Loc, fail, format_loc
from worker.simulation.limits import Limits
from worker.simulation.plans import ChannelPlan, EdgePlan, GraphPlan, LayerPlan, Plan, SourcePlan
from worker.simulation.request import (
    Base64Indices,
    Base64Tensor,
    DelayRange,
    DenseEdge,
    FixedInDegreeEdge,
    FixedOutDegreeEdge,
    GraphNetwork,
    IdentityEdge,
    InitSpec,
    JobRequest,
    LayerNode,
    OneToOneEdge,
    PairwiseBernoulliEdge,
    PoissonInput,
    PopulationFields,
    SparseEdge,
    SpikesInput,
)

LAYER_NODES = typing.get_args(LayerNode)
# A pairwise-Bernoulli edge's synapses are bounded, for its cost, by their mean plus this many
# standard deviations (a draw beyond it is refused when the network is built: odds below 1e-15).
BERNOULLI_SIGMAS = 8


INPUT = "input"  # the name of a request's top-level input in a graph


def validate_graph(request: JobRequest, limits: Limits) -> Plan:
    network = request.network
    assert isinstance(network, GraphNetwork)
    if len(network.nodes) > limits.max_layers:
        raise fail(("network", "nodes"), f"has {len(network.nodes)} nodes, over the limit of {limits.max_layers}", "limit")
    if len(network.edges) > limits.max_layers:
        raise fail(("network", "edges"), f"has {len(network.edges)} edges, over the limit of {limits.max_layers}", "limit")
    if request.batch is not None and request.batch > limits.max_batch:
        raise fail(("batch",), f"{request.batch} is over the limit of {limits.max_batch}", "limit")

    names: dict[str, int] = {}
    sources: list[SourcePlan] = []
    layers: list[LayerPlan] = []  # populations and layer nodes, in node order (layer nodes' shapes come later)
    steps_from: tuple[int, Loc] | None = (request.steps, ("steps",)) if request.steps is not None else None
    inputs: list[tuple[int, Any, Loc]] = [(index, node, ("network", "nodes", index)) for index, node in enumerate(network.nodes)]
    if request.input is not None:  # the top-level input: the node named "input", after the others
        inputs.append((len(network.nodes), request.input, ("input",)))
    for index, node, loc in inputs:
        name = INPUT if loc == ("input",) else node.name
        if name in names and loc == ("input",):
            where = ("network", "nodes", names[name], "name")
            raise fail(where, f"{name!r} names the request's top-level input; give this node another name")
        if name in names:
            raise fail((*loc, "name"), f"duplicate node name {name!r} (also network.nodes[{names[name]}])")
        names[name] = index
        if isinstance(node, PopulationFields):
            layers.append(_population(node, index, loc, limits))
            continue
        if isinstance(node, LAYER_NODES):
            layers.append(LayerPlan(index, name, node.type, (), ()))
            continue
        steps, _, shape, array = check_source(node, request, limits, loc)
        if steps_from is not None and steps != steps_from[0]:
            raise fail((*loc, "steps"), f"gives {steps} steps, but {format_loc(steps_from[1])} gives {steps_from[0]}")
        steps_from = steps_from or (steps, loc)
        sources.append(SourcePlan(index, name, node.type, shape, array, _max_count(node, array, request.dt)))
    if not any(layer.is_neuron for layer in layers):
        raise fail(("network", "nodes"), "has no neuron population: a graph needs at least one")
    if steps_from is None:
        raise fail(("steps",), "is required: no input node gives the number of steps", "missing")
    steps = steps_from[0]
    if steps > limits.max_steps:
        raise fail(steps_from[1], f"{steps} steps are over the limit of {limits.max_steps}", "limit")

    for index, edge in enumerate(network.edges):  # before any shape is inferred along them
        for key, name in (("from", edge.source), ("to", edge.target)):
            if name not in names:
                raise fail(("network", "edges", index, key), f"unknown node {name!r}; nodes are {', '.join(names)}")
    shapes = {source.name: source.shape for source in sources} | {p.name: p.out_shape for p in layers if p.is_neuron}
    parameters = _infer_layer_nodes(network, layers, shapes, limits)
    spiking = {p.name for p in layers if p.spikes or p.type == "threshold"}
    spiking |= {source.name for source in sources if source.max_count is not None}
    edges = [_edge(edge, index, shapes, layers, spiking, limits) for index, edge in enumerate(network.edges)]
    parameters += sum(edge.synapses for edge in edges if edge.type == "dense")
    if parameters > limits.max_parameters:
        raise fail(("network",), f"the network has over {limits.max_parameters:,} weights, the limit", "limit")
    synapses = sum(edge.synapses for edge in edges)
    if synapses > limits.max_synapses:
        top = max(edges, key=lambda edge: edge.synapses)
        raise fail(
            top.loc,
            f"the network has {synapses:,} synapses ({top.name!r}: {top.synapses:,}), over the limit of {limits.max_synapses:,}",
            "limit",
        )
    _channels(network, layers, edges, limits)
    _plasticity(request, network, layers, sources, edges, steps, spiking)
    pass_steps = 1 if any(edge.plastic for edge in edges) else _pass_steps(edges, names)
    order = _order(edges, names, pass_steps)
    plan = Plan(steps, request.batch, (), layers, [], {})
    plan.graph = GraphPlan(sources, edges, order, pass_steps)
    check_neuron_counts(plan, limits)
    resolve_record(request, plan)
    plan.cost = job_cost(request, plan, limits)
    check_cost(plan.cost, request, limits)
    return plan


def _infer_layer_nodes(network: GraphNetwork, layers: list[LayerPlan], shapes: dict[str, tuple[int, ...]], limits: Limits) -> int:
    """Each layer node's shapes, from the sources of its edges (which must be identity edges, all
    of one shape), in as many rounds as the chain of layer nodes is long; its weights' count."""
    pending = {layer.name: layer for layer in layers if not layer.is_neuron}
    parameters = 0
    while pending:
        progress = False
        for name, layer in list(pending.items()):
            loc: Loc = ("network", "nodes", layer.index)
            incoming = [(i, e) for i, e in enumerate(network.edges) if e.target == name]
            if not incoming:
                raise fail(loc, f"layer node {name!r} has no edge into it")
            for i, edge in incoming:
                if edge.type != "identity":
                    raise fail((*("network", "edges", i), "type"), f"edges into layer node {name!r} are 'identity' edges")
            known = [(i, shapes[e.source]) for i, e in incoming if e.source in shapes]
            if len(known) < len(incoming):
                continue
            (first, shape), *rest = known
            for i, other in rest:
                if other != shape:
                    raise fail(
                        ("network", "edges", i, "from"),
                        f"brings shape {shape_str(other)} to {name!r}, but network.edges[{first}] brings {shape_str(shape)}",
                    )
            source = network.edges[first].source
            got = f"{source!r} gives shape {shape_str(shape)}"
            inferred, weights = infer_layer(network.nodes[layer.index], layer.index, name, shape, got, loc, limits)
            layer.in_shape, layer.out_shape, layer.arrays = inferred.in_shape, inferred.out_shape, inferred.arrays
            shapes[name] = layer.out_shape
            parameters += weights
            del pending[name]
            progress = True
        if not progress:
            stuck = next(iter(pending.values()))
            raise fail(
                ("network", "nodes", stuck.index),
                f"the shape of layer node {stuck.name!r} depends on itself: a cycle of layer nodes needs a population in it",
            )
    return parameters


def _population(node: Any, index: int, loc: Loc, limits: Limits) -> LayerPlan:
    shape = tuple(node.size)
    plan = LayerPlan(index, node.name, node.type, shape, shape)
    plan.network_kernel = network_kernel_steps(node)
    check_params(node, plan, loc, limits)
    values = _initial_values(node.v0, (*loc, "v0"), shape, limits)
    if values is not None:
        plan.arrays["v0"] = values
    return plan


def network_kernel_steps(node: Any) -> bool:
    """Whether the network kernel steps this population: one with synaptic channels, or a box LIF
    with a refractory period, delta synapses and a reset to a value (Brunel's neuron), whose step
    is that of ``lif_channels`` without channels, operation for operation."""
    if MODELS[node.type].channels:
        return True
    params = node.params
    return node.type == "lifbox_refrac" and params.synapse == "delta" and params.reset_method in (None, "value")


def _initial_values(value: Any, loc: Loc, shape: tuple[int, ...], limits: Limits) -> np.ndarray | None:
    """A population's initial value (a voltage, a channel's state): checked, and decoded unless it
    is drawn from the seed or absent."""
    if value is None:
        return None
    if isinstance(value, InitSpec):
        if value.init == "uniform" and value.low > value.high:
            raise fail((*loc, "low"), "must not exceed high")
        return None
    values = decode_tensor(value, loc, limits.max_input_bytes)
    if not broadcasts(values.shape, shape):
        raise fail(loc, f"has shape {shape_str(values.shape)}, not broadcastable to {shape_str(shape)}")
    return values


def _max_count(node: Any, array: np.ndarray | None, dt: float) -> int | None:
    """The most spikes one feature of a source can carry in a step (None: float values)."""
    if isinstance(node, PoissonInput):
        if node.sources == 1:
            return 1
        assert array is not None
        table, _ = count_thresholds(node.sources, np.unique(array).astype(np.float64) * dt)
        return int((table < FULL).sum(axis=1).max())
    if isinstance(node, SpikesInput):
        events = np.stack([node.times, node.batch or [0] * len(node.times), node.indices], axis=1)
        return int(np.unique(events, axis=0, return_counts=True)[1].max()) if len(node.times) else 1
    return None  # tensor and constant inputs: float values


def _indices(value: Any, loc: Loc, bound: int, what: str, max_bytes: int) -> np.ndarray:
    """A list of integers or base64 int32 -> int64 array, each below ``bound``."""
    if isinstance(value, Base64Indices):
        if value.shape[0] * 4 > max_bytes:
            raise fail((*loc, "shape"), f"{value.shape[0]} values exceed the limit of {max_bytes // 4}", "limit")
        try:
            raw = base64.b64decode(value.base64, validate=True)
        except (binascii.Error, ValueError):
            raise fail((*loc, "base64"), "is not valid base64") from None
        if len(raw) != value.shape[0] * 4:
            raise fail(
                (*loc, "base64"), f"decodes to {len(raw)} bytes, but shape {value.shape} of int32 needs {value.shape[0] * 4}"
            )
        array = np.frombuffer(raw, dtype="<i4").astype(np.int64)
        if array.size and array.min() < 0:
            raise fail(loc, f"holds a negative value at index {int(np.argmax(array < 0))}")
    else:
        if len(value) * 8 > max_bytes:
            raise fail(loc, f"has over {max_bytes // 8} values, the limit", "limit")
        array = np.asarray(value, dtype=np.int64)
    if array.size and array.max() >= bound:
        position = int(np.argmax(array >= bound))
        raise fail((*loc, position), f"{int(array[position])} is out of range: the {what} has {bound} neurons")
    return array


def _edge(
    edge: Any,
    index: int,
    shapes: dict[str, tuple[int, ...]],
    layers: list[LayerPlan],
    spiking: set[str],
    limits: Limits,
) -> EdgePlan:
    loc: Loc = ("network", "edges", index)
    target = next((layer for layer in layers if layer.name == edge.target), None)
    if target is None:
        raise fail((*loc, "to"), f"node {edge.target!r} is an input: edges end at populations and layer nodes")
    n_pre, n_post = math.prod(shapes[edge.source]), math.prod(target.in_shape)
    label = edge.name or f"{edge.source}->{edge.target}"
    if isinstance(edge.delay, DelayRange):
        if edge.delay.low > edge.delay.high:
            raise fail((*loc, "delay", "low"), "must not exceed high")
        min_delay, max_delay = edge.delay.low, edge.delay.high
    else:
        min_delay = max_delay = edge.delay
    plan = EdgePlan(index, label, edge.type, edge.source, edge.target, n_pre, n_post, 0, min_delay, max_delay)
    same = edge.source == edge.target
    if isinstance(edge, IdentityEdge) and n_pre != n_post:
        raise fail(
            (*loc, "to"),
            f"an identity edge joins nodes of one size, but {edge.source!r} gives {n_pre} values "
            f"and {edge.target!r} takes {n_post}",
        )
    if not isinstance(edge, (IdentityEdge, DenseEdge, OneToOneEdge)) and edge.source not in spiking:
        raise fail((*loc, "from"), f"{edge.type} edges carry spikes, and node {edge.source!r} gives values that are not spikes")
    if isinstance(edge, DenseEdge) and isinstance(edge.delay, DelayRange):
        raise fail((*loc, "delay"), "a dense edge has one delay for all its synapses")
    if isinstance(edge, IdentityEdge):
        plan.synapses = n_post
    elif isinstance(edge, DenseEdge):
        plan.synapses = n_pre * n_post
        if isinstance(edge.weight, (list, Base64Tensor)):
            plan.arrays["weight"] = _shaped(edge.weight, (*loc, "weight"), (n_post, n_pre), limits)
        if plan.synapses > limits.max_parameters:
            raise fail((*loc, "weight"), f"{plan.synapses:,} weights are over the limit of {limits.max_parameters:,}", "limit")
    elif isinstance(edge, OneToOneEdge):
        if n_pre != n_post:
            raise fail(
                (*loc, "to"),
                f"one_to_one needs two nodes of one size, but {edge.source!r} has {n_pre} and {edge.target!r} {n_post}",
            )
        plan.synapses = n_post
        if isinstance(edge.weight, list):
            values = decode_tensor(edge.weight, (*loc, "weight"), limits.max_input_bytes).reshape(-1)
            if values.size not in (1, n_post):
                raise fail((*loc, "weight"), f"has {values.size} values for {n_post} synapses")
            plan.arrays["weight"] = values
    elif isinstance(edge, (FixedInDegreeEdge, FixedOutDegreeEdge)):
        drawn_from = n_pre if isinstance(edge, FixedInDegreeEdge) else n_post
        available = drawn_from - (1 if same and not edge.autapses else 0)
        if edge.k > available and not edge.multapses:
            role = "sources" if isinstance(edge, FixedInDegreeEdge) else "targets"
            raise fail((*loc, "k"), f"{edge.k} distinct {role} asked of {available} (set multapses to allow repeats)")
        if available < 1:
            raise fail((*loc, "autapses"), "a population of one neuron without autapses has no partner to draw")
        plan.synapses = edge.k * (n_post if isinstance(edge, FixedInDegreeEdge) else n_pre)
    elif isinstance(edge, PairwiseBernoulliEdge):
        pairs = n_pre * n_post - (min(n_pre, n_post) if same and not edge.autapses else 0)
        mean = pairs * edge.p
        plan.synapses = min(pairs, math.ceil(mean + BERNOULLI_SIGMAS * math.sqrt(mean * (1 - edge.p)) + BERNOULLI_SIGMAS))
    else:
        assert isinstance(edge, SparseEdge)
        pre = _indices(edge.pre, (*loc, "pre"), n_pre, f"source {edge.source!r}", limits.max_input_bytes)
        post = _indices(edge.post, (*loc, "post"), n_post, f"target {edge.target!r}", limits.max_input_bytes)
        if len(pre) != len(post):
            raise fail((*loc, "post"), f"has {len(post)} entries but pre has {len(pre)}")
        plan.synapses = len(pre)
        plan.arrays |= {"pre": pre, "post": post}
        if isinstance(edge.weight, (list, Base64Tensor)):
            weights = decode_tensor(edge.weight, (*loc, "weight"), limits.max_input_bytes).reshape(-1)
            if weights.size != len(pre):
                raise fail((*loc, "weight"), f"has {weights.size} values for {len(pre)} synapses")
            plan.arrays["weight"] = weights
        if not isinstance(edge.delay, int):
            delays = _indices(edge.delay, (*loc, "delay"), limits.max_steps + 1, "delay bound", limits.max_input_bytes)
            if len(delays) != len(pre):
                raise fail((*loc, "delay"), f"has {len(delays)} values for {len(pre)} synapses")
            plan.arrays["delay"] = delays
            plan.min_delay, plan.max_delay = (int(delays.min()), int(delays.max())) if delays.size else (0, 0)
    weight = getattr(edge, "weight", None)
    if isinstance(weight, InitSpec) and weight.init == "uniform" and weight.low > weight.high:
        raise fail((*loc, "weight", "low"), "must not exceed high")
    if plan.max_delay > limits.max_steps:
        raise fail((*loc, "delay"), f"{plan.max_delay} steps are over the limit of {limits.max_steps}", "limit")
    return plan


def _channels(network: GraphNetwork, layers: list[LayerPlan], edges: list[EdgePlan], limits: Limits) -> None:
    """Each population's synaptic channels, from the synapses of the edges into it (edges with the
    same synapse type and parameters share one), and each edge's row of its target's input."""
    by_name = {layer.name: layer for layer in layers}
    keys: dict[str, list[tuple[Any, ...]]] = {}
    for edge in edges:
        synapse = network.edges[edge.index].synapse
        model = SYNAPSE_MODELS[synapse.type]
        if not model.channel:
            continue
        loc: Loc = (*edge.loc, "synapse")
        target = by_name[edge.target]
        if not (target.is_neuron and MODELS[target.type].channels):
            having = ", ".join(name for name, neuron in MODELS.items() if neuron.channels)
            raise fail(
                (*loc, "type"),
                f"a {synapse.type} synapse is a channel of its target, and {edge.target!r} ({target.type}) has none; "
                f"populations of {having} have channels",
            )
        population: Any = network.nodes[target.index]
        if model.conductance and population.params.integration == "exact":
            raise fail(
                (*loc, "type"),
                f"population {edge.target!r} integrates exactly ('integration': 'exact'), which takes current channels "
                "only; give it 'euler' for conductances",
            )
        key = (synapse.type, *(getattr(synapse, name) for name in model.parameters))
        known = keys.setdefault(edge.target, [])
        if key not in known:
            known.append(key)
            target.channels.append(
                ChannelPlan(synapse.type, model.conductance, synapse.tau_syn, getattr(synapse, "e_rev", 0.0), None)
            )
        edge.channel = 1 + known.index(key)
        channel = target.channels[edge.channel - 1]
        if synapse.initial is not None:
            if channel.initial is not None and channel.initial != synapse.initial:
                first = next(e for e in edges if e.target == edge.target and e.channel == edge.channel)
                raise fail(
                    (*loc, "initial"),
                    f"this edge shares its channel of {edge.target!r} with network.edges[{first.index}], which gives "
                    "another initial value; give it once",
                )
            channel.initial = synapse.initial
            channel.array = _initial_values(synapse.initial, (*loc, "initial"), target.out_shape, limits)


def _plasticity(
    request: JobRequest,
    network: GraphNetwork,
    layers: list[LayerPlan],
    sources: list[SourcePlan],
    edges: list[EdgePlan],
    steps: int,
    spiking: set[str],
) -> None:
    """What a plastic edge needs: spikes in (one at most per neuron and step), a spiking population
    out, one delay of at least a step, one network (no batch), and bounds in order; and the
    weight snapshots ``record.weights`` asks for."""
    by_name = {layer.name: layer for layer in layers}
    max_count = {source.name: source.max_count for source in sources}
    plastic: dict[str, EdgePlan] = {}
    for edge in edges:
        model = network.edges[edge.index]
        rule = model.plasticity
        if rule is None:
            continue
        loc: Loc = (*edge.loc, "plasticity")
        if edge.type == "identity":
            raise fail((*edge.loc, "type"), "an identity edge has no weights to change; a plastic edge is a projection")
        if edge.source not in spiking:
            raise fail((*edge.loc, "from"), f"a plastic edge's source spikes, and {edge.source!r} gives other values")
        if edge.source in max_count and max_count[edge.source] != 1:
            raise fail(
                (*edge.loc, "from"),
                f"a plastic edge takes one spike per neuron and step, and {edge.source!r} carries "
                + ("values that are not spikes" if max_count[edge.source] is None else f"up to {max_count[edge.source]}"),
            )
        target = by_name[edge.target]
        if not target.spikes:
            raise fail((*edge.loc, "to"), f"a plastic edge's target spikes, and {edge.target!r} ({target.type}) does not")
        if edge.min_delay != edge.max_delay or edge.min_delay < 1:
            raise fail((*edge.loc, "delay"), "a plastic edge has one delay for all its synapses, of at least one step")
        if request.batch not in (None, 1):
            raise fail(loc, "plastic weights belong to one network: run it without a batch")
        if rule.w_min > rule.w_max:
            raise fail((*loc, "w_min"), f"{rule.w_min} is over w_max ({rule.w_max})")
        if edge.name in plastic:
            raise fail(
                (*edge.loc, "name"),
                f"network.edges[{plastic[edge.name].index}] is a plastic edge named {edge.name!r} too; give them names",
            )
        edge.plastic = True
        plastic[edge.name] = edge
    for name, when in request.record.weights.items():
        loc = ("record", "weights", name)
        if name not in plastic:
            known = ", ".join(repr(n) for n in plastic) or "none"
            raise fail(loc, f"names no plastic edge (plastic edges: {known})")
        if (when.every is None) == (when.steps is None):
            raise fail(loc, "give either 'every' (steps between snapshots) or 'steps' (the steps after which to take them)")
        if when.every is not None:
            plastic[name].snapshots = list(range(when.every - 1, steps, when.every))
        else:
            assert when.steps is not None
            late = [step for step in when.steps if step >= steps]
            if late:
                raise fail((*loc, "steps"), f"step {late[0]} is past the run's last step ({steps - 1})")
            plastic[name].snapshots = sorted(set(when.steps))


def _shaped(value: Any, loc: Loc, shape: tuple[int, ...], limits: Limits) -> np.ndarray:
    array = decode_tensor(value, loc, limits.max_input_bytes)
    if array.shape != shape:
        raise fail(loc, f"has shape {shape_str(array.shape)}, expected {shape_str(shape)} (target neurons, source neurons)")
    return array


def _reaches(edges: list[EdgePlan], names: dict[str, int]) -> dict[str, set[str]]:
    """For every node, the nodes reachable from it along the edges."""
    successors: dict[str, set[str]] = {name: set() for name in names}
    for edge in edges:
        successors[edge.source].add(edge.target)
    reached: dict[str, set[str]] = {}
    for start in names:
        seen: set[str] = set()
        stack = list(successors[start])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(successors[node])
        reached[start] = seen
    return reached


def _pass_steps(edges: list[EdgePlan], names: dict[str, int]) -> int | None:
    """The smallest delay of a delayed edge on any cycle (every cycle has one: a cycle of
    zero-delay edges is an error naming it). Edges shorter than that are then never on a cycle."""
    undelayed = [edge for edge in edges if edge.min_delay == 0]
    reached = _reaches(undelayed, names)
    for edge in undelayed:
        if edge.source in reached[edge.target] or edge.source == edge.target:
            cycle = _cycle(undelayed, edge)
            raise fail(
                (*edge.loc, "delay"),
                f"the cycle {' -> '.join(cycle)} has no delay: every cycle needs an edge with a delay of at least one step",
            )
    reached = _reaches(edges, names)
    on_cycles = [edge for edge in edges if edge.source in reached[edge.target] or edge.source == edge.target]
    delays = [edge.min_delay for edge in on_cycles if edge.min_delay > 0]  # every cycle has one of these
    return min(delays) if delays else None


def _cycle(edges: list[EdgePlan], first: EdgePlan) -> list[str]:
    """Node names along a cycle through ``first`` (which closes one), from its source back to it."""
    path = {first.target: [first.source, first.target]}
    frontier = [first.target]
    while frontier:
        node = frontier.pop(0)
        if node == first.source:
            return path[node]
        for edge in edges:
            if edge.source == node and edge.target not in path:
                path[edge.target] = [*path[node], edge.target]
                frontier.append(edge.target)
    return [first.source, first.target]


def _order(edges: list[EdgePlan], names: dict[str, int], pass_steps: int | None) -> list[str]:
    """The nodes in a topological order of the edges shorter than a pass, ties by node index."""
    binding = [edge for edge in edges if pass_steps is None or edge.min_delay < pass_steps]
    waiting = {name: {e.source for e in binding if e.target == name and e.source != name} for name in names}
    order: list[str] = []
    while len(order) < len(names):
        ready = next(name for name in names if name not in order and not waiting[name] - set(order))
        order.append(ready)
    return order
