"""What a job will cost, computed from its validated plan before it is queued.

Every figure is an upper bound derived from the request alone (shapes, steps, batch, what is
recorded), so a job over a limit is refused with a 422 naming the layer and the figure instead of
being discovered in the worker. Per step and per batch entry, for each layer:

    linear             ops = in x out                            (multiply-adds)
    lif_recurrent      ops = out x (in + out)
    conv1d / conv2d    ops = out_channels x output positions x in_channels x kernel
    avgpool2d          ops = output elements x kernel
    scale, threshold   ops = elements
    a graph's edge     ops = synapses x the largest count its source carries in a step
    every layer        activation bytes = output elements x 4 (1 for spikes, plus 4 per state
                       field of layers whose voltages are recorded)
    conv1d / conv2d    workspace bytes = (padded input + unfolded input) x 4, for one step

The job's figures, with B = batch and T = steps:

    synaptic_ops   = sum(ops) x B x T                  <= max_synaptic_ops
    step_ops       = sum(ops) x B                      <= max_step_ops     (one step's work)
    neuron_steps   = neurons x B x T                   <= max_neuron_steps
    chunk_bytes    = chunk x sum(activation) x B + max(workspace) x B      <= max_chunk_bytes
    record_bytes   = voltages x 4 + spike events x 24  <= max_record_bytes
    result_bytes   = the larger of the JSON and NPZ encodings at worst     <= max_result_bytes

Spike events are bounded by neurons x B x T of the recorded layers, and by ``max_spike_events``:
the request's ``record.max_spike_events`` if it gives one (at most the limit's), else as many as
fit the limits beside everything else recorded. A run that produces more fails with that reason
as soon as a chunk crosses it; the bound itself is never a reason to refuse a job. ``chunk`` (steps simulated between progress
reports and cancel checks) is chosen here too, from the request alone: as many steps as fit a
memory budget and an estimated half second of work, at most 1,000.

A graph (``_graph_cost``) adds fixed memory (its synapses and delay rings, ``fixed_bytes``), the
random draws that build its connectivity (``build_ops``: a draw per synapse, or per weight of a
dense edge, and a pass over both populations; counted with the synaptic operations)
and the Python around each node's and edge's call in every pass (``pass_calls``).
"""

import math
from typing import Any

from worker.registry import MODELS
from worker.simulation.errors import Loc, fail
from worker.simulation.limits import Limits
from worker.simulation.plans import (
    EVENT_BYTES,
    FLOAT_BYTES,
    MAX_CHUNK_STEPS,
    MAX_KERNEL_CHUNK_STEPS,
    Cost,
    LayerCost,
    Plan,
)
from worker.simulation.request import GraphNetwork, JobRequest, Network

NEURON_STEPS_PER_S = {"fused": 1e9, "eager": 2e7}  # a model whose whole sequence runs in one kernel call, or not
PLASTIC_OPS = 3  # per synapse a plastic edge may deliver, depress and potentiate in one step
PLASTIC_SYNAPSE_BYTES = 4 * FLOAT_BYTES  # target, weight, source, index by target


def _layer_cost(layer: Any, plan: Any, record_voltages: bool, loc: "Loc | None" = None) -> LayerCost:
    """One layer's per-step, per-batch-entry figures (see the module docstring)."""
    out = math.prod(plan.out_shape)
    ops = 0
    workspace = 0
    activation = out * FLOAT_BYTES
    kind = layer.type
    if kind == "linear":
        ops = layer.in_features * layer.out_features
    elif kind == "lif_recurrent":
        ops = layer.out_features * (layer.in_features + layer.out_features)
    elif kind in ("conv1d", "conv2d"):
        kernel = math.prod(layer.kernel_size) if kind == "conv2d" else layer.kernel_size
        positions = math.prod(plan.out_shape[1:])
        ops = layer.out_channels * positions * layer.in_channels * kernel
        padding = layer.padding if kind == "conv2d" else (layer.padding,)
        padded = layer.in_channels * math.prod(n + 2 * p for n, p in zip(plan.in_shape[1:], padding, strict=True))
        workspace = (padded + layer.in_channels * kernel * positions) * FLOAT_BYTES
    elif kind == "avgpool2d":
        ops = out * math.prod(layer.kernel_size)
        padded = plan.in_shape[0] * math.prod(n + 2 * p for n, p in zip(plan.in_shape[1:], layer.padding, strict=True))
        workspace = padded * FLOAT_BYTES
    elif kind in ("scale", "threshold"):
        ops = out
    stepped = False
    if plan.is_neuron:
        model = MODELS[kind]
        recorded = len(model.state) + model.spikes  # every step's state, and the float spikes beside it
        activation = out * (1 + (FLOAT_BYTES * recorded if record_voltages else 0))
        stepped = not _fused(layer)  # its step loop runs in Python
    loc = loc or ("network", "layers", plan.index)
    return LayerCost(loc, plan.name, kind, ops, activation, workspace, stepped, per_step=kind == "lif_recurrent")


def _fused(layer: Any) -> bool:
    """One kernel call runs the neuron layer's whole sequence (a box LIF with delta synapses has
    none, unless it is refractory)."""
    return MODELS[layer.type].runs_fused(getattr(getattr(layer, "params", None), "synapse", None) or "current")


def job_cost(request: "JobRequest", plan: "Plan", limits: "Limits") -> Cost:
    batch = plan.batch_size
    cost = _graph_cost(request, plan) if plan.graph is not None else _chain_cost(request, plan)
    by_name = {layer_plan.name: layer_plan for layer_plan in plan.layers}
    spiking = [by_name[name].neurons for name in plan.record_spikes]
    voltages = sum((by_name[name].neurons if kept is None else len(kept)) for name, kept in plan.record_voltages.items())
    cost.spike_event_bound = sum(spiking) * batch * plan.steps
    cost.voltage_values = voltages * batch * plan.steps
    cost.count_values = sum(spiking) * batch
    cost.recorded_neurons = max(spiking, default=0)
    requested = request.record.max_spike_events
    if requested is not None:
        cost.max_spike_events = requested
    else:  # as many as fit beside everything else recorded, in memory and in either encoding
        fixed = Cost(**{**cost.__dict__, "spike_event_bound": 0})
        cost.max_spike_events = max(
            0,
            min(
                limits.max_spike_events,
                (limits.max_record_bytes - fixed.record_bytes) // EVENT_BYTES,
                (limits.max_result_bytes - fixed.result_npz_bytes) // EVENT_BYTES,
                (limits.max_result_bytes - fixed.result_json_bytes) // cost.event_json_bytes,
            ),
        )
    return cost


def _input_cost(source: Any, loc: Loc, name: str, size: int, steps: int) -> LayerCost:
    """An input's figures: a step of its values, and what the worker holds for the whole run:
    per feature a threshold (int64) of one Poisson train, or a row of the count table (int32) of
    several; a tensor's values; a spike list's events."""
    if source.type == "poisson":
        fixed = size * (8 if source.sources == 1 else 4)
    elif source.type == "tensor":
        fixed = size * steps * FLOAT_BYTES
    elif source.type == "spikes":
        fixed = len(source.times) * EVENT_BYTES
    else:
        fixed = 0  # a constant: its values as given, expanded as a view
    return LayerCost(loc, name, source.type, 0, size * FLOAT_BYTES, fixed_bytes=fixed)


def _chain_cost(request: "JobRequest", plan: "Plan") -> Cost:
    network = request.network
    assert isinstance(network, Network)
    layers = [
        _layer_cost(layer, layer_plan, layer_plan.name in plan.record_voltages)
        for layer, layer_plan in zip(network.layers, plan.layers, strict=True)
    ]
    source = _input_cost(request.input, ("input",), "input", math.prod(plan.input_shape), plan.steps)
    return Cost(
        steps=plan.steps,
        batch=plan.batch_size,
        layers=layers,
        input_bytes=source.activation_bytes,
        neuron_steps=plan.neuron_steps,
        neuron_seconds=_neuron_seconds(network.layers, plan),
        fixed_bytes=source.fixed_bytes,
        inputs=[source],
    )


def _neuron_seconds(layers: Any, plan: "Plan") -> float:
    """One step's neuron updates of one batch entry, at the fused kernels' or the eager step's rate."""
    return sum(
        layer_plan.neurons / NEURON_STEPS_PER_S["fused" if _fused(layer) else "eager"]
        for layer, layer_plan in zip(layers, plan.layers, strict=True)
        if layer_plan.is_neuron
    )


def _graph_cost(request: "JobRequest", plan: "Plan") -> Cost:
    """A graph's figures: per edge its worst-case synaptic events per step (every synapse carries
    its source's largest count), per population its activations; synapses and delay buffers are
    fixed memory, and drawing connectivity from the seed counts as work."""
    graph = plan.graph
    network = request.network
    assert graph is not None and isinstance(network, GraphNetwork)
    nodes = [network.nodes[layer_plan.index] for layer_plan in plan.layers]  # populations and layer nodes
    max_count = {source.name: source.max_count for source in graph.sources}
    layers = [
        _layer_cost(node, layer_plan, layer_plan.name in plan.record_voltages, ("network", "nodes", layer_plan.index))
        for node, layer_plan in zip(nodes, plan.layers, strict=True)
    ]
    fixed = build = 0
    weights = synapses = neurons = largest = 0
    weight_loc: Loc = ("network", "edges")
    for edge in graph.edges:
        events = edge.synapses * (max_count.get(edge.source) or 1)
        # a plastic edge's presynaptic events also change their weights, and a postsynaptic spike every weight into it
        layers.append(LayerCost(edge.loc, edge.name, edge.type, events * (PLASTIC_OPS if edge.plastic else 1), 0))
        model = network.edges[edge.index]
        per_synapse = FLOAT_BYTES  # the target (sparse) or the weight (dense)
        if edge.plastic:  # target, weight, and the synapse's source and index in the rows by target
            per_synapse = PLASTIC_SYNAPSE_BYTES
            fixed += 8 * (edge.n_pre + edge.n_post + 2) + FLOAT_BYTES * (edge.n_pre + edge.n_post) + edge.min_delay * edge.n_pre
            recorded = edge.synapses * (1 + len(edge.snapshots))  # the final weights and the snapshots
            if recorded > largest:  # the edge a refusal names
                largest = recorded
                weight_loc = ("record", "weights", edge.name) if edge.snapshots else (*edge.loc, "plasticity")
            weights += recorded
            synapses += edge.synapses
            neurons = max(neurons, edge.n_pre, edge.n_post)
        elif edge.type not in ("dense", "one_to_one"):
            per_synapse += FLOAT_BYTES * (_drawn(getattr(model, "weight", None)) or "weight" in edge.arrays)
            per_synapse += FLOAT_BYTES * (edge.min_delay != edge.max_delay)
            fixed += 8 * (edge.n_pre + 1)
        fixed += edge.synapses * per_synapse
        build += _build_ops(edge)
    for layer_plan in plan.layers:  # future input in the delay buffer (a row per channel), the channels' state
        rows = 1 + len(layer_plan.channels)
        delayed = graph.max_delay_into(layer_plan.name) * rows + len(layer_plan.channels)
        fixed += delayed * math.prod(layer_plan.in_shape) * FLOAT_BYTES * plan.batch_size
    inputs = [
        _input_cost(
            network.nodes[source.index] if source.index < len(network.nodes) else request.input,
            ("network", "nodes", source.index) if source.index < len(network.nodes) else ("input",),
            source.name,
            source.size,
            plan.steps,
        )
        for source in graph.sources
    ]
    fixed += sum(source.fixed_bytes for source in inputs)
    kernel = plan.network_kernel
    return Cost(
        steps=plan.steps,
        batch=plan.batch_size,
        layers=layers,
        input_bytes=sum(source.activation_bytes for source in inputs)
        + sum(math.prod(layer_plan.in_shape) for layer_plan in plan.layers) * FLOAT_BYTES,  # each node's summed input
        neuron_steps=plan.neuron_steps,
        neuron_seconds=_neuron_seconds(nodes, plan),
        fixed_bytes=fixed,
        build_ops=build,
        # the network kernel makes one call per chunk; otherwise each node and edge one per pass
        pass_calls=0.0
        if kernel
        else (len(plan.layers) + len(graph.sources) + len(graph.edges)) / (graph.pass_steps or MAX_CHUNK_STEPS),
        max_chunk_steps=MAX_KERNEL_CHUNK_STEPS if kernel else MAX_CHUNK_STEPS,
        inputs=inputs,
        weight_values=weights,
        weight_synapses=synapses,
        weight_neurons=neurons,
        weight_loc=weight_loc,
    )


def _build_ops(edge: Any) -> int:
    """The random draws and passes over neurons that build an edge's synapses: a dense edge draws
    every weight; the degree rules, Bernoulli's geometric gaps and the sparse rows take a draw or
    a sort per synapse, and a pass over both populations."""
    if edge.type == "dense":
        return edge.n_pre * edge.n_post
    if edge.type == "identity":
        return 0
    return edge.synapses + edge.n_pre + edge.n_post


def _drawn(weight: Any) -> bool:
    return getattr(weight, "init", "constant") != "constant"


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


RECORD_LESS = "record fewer layers, neurons or steps, or set a lower record.max_spike_events"


def check_cost(cost: Cost, request: "JobRequest", limits: "Limits") -> None:
    """Raises InvalidRequest at the field or layer responsible for the first figure over its limit."""

    top = max(cost.layers, key=lambda layer: layer.ops)
    for figure, limit, per_layer, needs, unit in (
        (cost.step_ops, limits.max_step_ops, cost.batch, "one step needs", " per step"),
        (cost.synaptic_ops, limits.max_synaptic_ops, cost.batch * cost.steps, "the job needs", ""),
    ):
        if figure > limit:
            raise fail(
                top.loc,
                f"{needs} {figure:.3g} synaptic operations ({top.type} {top.name!r}: {top.ops * per_layer:.3g}), "
                f"over the limit of {limit:.3g}{unit}",
                "limit",
            )
    one_step = cost.step_bytes + cost.workspace_bytes + cost.fixed_bytes
    if one_step > limits.max_chunk_bytes:
        top = max(
            [*cost.layers, *cost.inputs],
            key=lambda part: (part.activation_bytes + part.workspace_bytes) * cost.batch + part.fixed_bytes,
        )
        detail = f"{top.type} {top.name!r}: {_size((top.activation_bytes + top.workspace_bytes) * cost.batch + top.fixed_bytes)}"
        if top.workspace_bytes:
            detail += f", of which {_size(top.workspace_bytes * cost.batch)} padded and unfolded input"
        if top.fixed_bytes:
            detail += f", of which {_size(top.fixed_bytes)} held for the whole run"
        raise fail(
            top.loc,
            f"one step needs {_size(one_step)} of memory ({detail}), over the limit of {_size(limits.max_chunk_bytes)} per chunk",
            "limit",
        )
    if cost.weight_bytes > limits.max_record_bytes:
        raise fail(
            cost.weight_loc,
            f"the plastic edges' weights would take {_size(cost.weight_bytes)} to record ({cost.weight_values:,} values of "
            f"{cost.weight_synapses:,} synapses, final and snapshots), over the limit of {_size(limits.max_record_bytes)}; "
            "take fewer snapshots",
            "limit",
        )
    requested = request.record.max_spike_events
    if requested is not None and requested > limits.max_spike_events:
        raise fail(("record", "max_spike_events"), f"{requested} is over the limit of {limits.max_spike_events}", "limit")
    if cost.record_bytes > limits.max_record_bytes:
        raise fail(
            ("record",),
            f"would keep up to {_size(cost.record_bytes)} ({cost.voltage_values} voltage values, {cost.spike_events} spike "
            f"events), over the limit of {_size(limits.max_record_bytes)}; {RECORD_LESS}",
            "limit",
        )
    if cost.result_bytes > limits.max_result_bytes:
        raise fail(
            ("record",),
            f"the result could take up to {_size(cost.result_bytes)} as JSON or NPZ ({cost.voltage_values} voltage values, "
            f"{cost.spike_events} spike events), over the limit of {_size(limits.max_result_bytes)}; {RECORD_LESS}",
            "limit",
        )
