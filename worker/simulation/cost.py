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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from worker.simulation.errors import Loc, fail
from worker.simulation.limits import Limits
from worker.simulation.request import GraphNetwork, JobRequest, Network

if TYPE_CHECKING:  # the plan modules import this one
    from worker.simulation.checks import Plan

FLOAT_BYTES = 4
EVENT_BYTES = 3 * 8  # times, senders and batch as int64 in the NPZ (and in the worker's memory)
FLOAT_JSON_BYTES = 24  # the longest float32 written as JSON: "-1.0000000116860974e-05,"
STATE_FIELDS = {
    "lif": 3, "lif_refrac": 4, "lifbox": 2, "lifbox_refrac": 3, "li": 2, "iaf": 2, "alif": 4, "lifadex": 4,
    "izhikevich": 3, "lif_recurrent": 3,
}  # fmt: skip

CHUNK_BUDGET_BYTES = 256 * 2**20  # activations of one chunk, all layers together
MAX_CHUNK_STEPS = 1000
# The chunk's length is also bounded by an estimate of its run time, so that progress, cancels
# and time limits are seen at least about every CHUNK_TARGET_S. Rates measured on one core of a
# 2-core x86-64 VM (benchmarks/RESULTS.md); slower machines take proportionally longer chunks.
CHUNK_TARGET_S = 0.5
# Feed-forward synaptic layers run once per chunk (one GEMM or convolution over all its rows, or
# the event kernels, at 1e11 multiply-adds/s measured for the GEMM); a recurrent layer's product
# is one small GEMM per step.
SYNAPTIC_OPS_PER_S = {"chunk": 2e10, "step": 2e9}
NEURON_STEPS_PER_S = {"fused": 1e9, "eager": 2e7}
RECORDED_NEURON_STEPS_PER_S = 5e8  # finding and counting the spikes of recorded layers
# models whose whole sequence runs in one kernel call (the box LIF with a refractory period has a
# kernel of its own, for either synapse)
FUSED_MODELS = ("lif", "lifbox", "li", "iaf", "alif", "lifbox_refrac", "lifbox_refrac:delta")
# layers whose step loop runs in Python
STEPPED_LAYERS = ("lif_refrac", "lifadex", "izhikevich", "lif_recurrent", "lifbox:delta")
STEP_OVERHEAD_S = 20e-6  # per such layer and step: Python and dispatch around each operation
RESULT_OVERHEAD = 64 * 1024  # headers, names and statistics of an encoded result


def _digits(n: int) -> int:
    return len(str(max(0, n)))


@dataclass(frozen=True)
class LayerCost:
    """A layer's figures; in a graph, a node's or an edge's (``loc`` names it in errors)."""

    loc: Loc
    name: str
    type: str
    ops: int  # synaptic operations per step and batch entry
    activation_bytes: int  # kept for every step of a chunk, per batch entry
    workspace_bytes: int = 0  # transient, one step at a time, per batch entry
    stepped: bool = False  # its step loop runs in Python (STEPPED_LAYERS, or delta synapses)
    fixed_bytes: int = 0  # held for the whole run (an input's per-feature tables, a tensor's values)


@dataclass
class Cost:
    steps: int
    batch: int
    layers: list[LayerCost]
    input_bytes: int  # one step of input, per batch entry
    neuron_steps: int
    neurons_by_type: dict[str, int] = field(default_factory=dict)
    spike_event_bound: int = 0
    max_spike_events: int = 0
    voltage_values: int = 0
    count_values: int = 0
    recorded_neurons: int = 0
    fixed_bytes: int = 0  # allocated once for the run: a graph's synapses, delay buffers
    build_ops: int = 0  # drawing a graph's connectivity: random numbers drawn
    pass_calls: float = 0.0  # a graph's kernel calls per step: (nodes + edges) / steps per pass
    inputs: list[LayerCost] = field(default_factory=list)  # the inputs' figures (their fixed bytes are in fixed_bytes)

    @property
    def step_ops(self) -> int:
        return sum(layer.ops for layer in self.layers) * self.batch

    @property
    def synaptic_ops(self) -> int:
        return self.step_ops * self.steps + self.build_ops

    @property
    def step_bytes(self) -> int:
        return (self.input_bytes + sum(layer.activation_bytes for layer in self.layers)) * self.batch

    @property
    def workspace_bytes(self) -> int:
        return max((layer.workspace_bytes for layer in self.layers), default=0) * self.batch

    @property
    def step_seconds(self) -> float:
        """A rough estimate of one step's run time, for sizing chunks (never for refusing jobs)."""
        neuron_s = sum(
            count * self.batch / NEURON_STEPS_PER_S["fused" if kind in FUSED_MODELS else "eager"]
            for kind, count in self.neurons_by_type.items()
        )
        recording_s = self.count_values / RECORDED_NEURON_STEPS_PER_S
        synaptic_s = sum(
            layer.ops * self.batch / SYNAPTIC_OPS_PER_S["step" if layer.type == "lif_recurrent" else "chunk"]
            for layer in self.layers
        )
        stepped = sum(layer.stepped for layer in self.layers)
        return synaptic_s + neuron_s + recording_s + STEP_OVERHEAD_S * (stepped + self.pass_calls)

    @property
    def chunk_steps(self) -> int:
        by_memory = CHUNK_BUDGET_BYTES // max(1, self.step_bytes)
        step_seconds = self.step_seconds
        by_time = int(CHUNK_TARGET_S / step_seconds) if step_seconds > 0 else MAX_CHUNK_STEPS
        return max(1, min(self.steps, MAX_CHUNK_STEPS, by_memory, by_time))

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_steps * self.step_bytes + self.workspace_bytes + self.fixed_bytes

    @property
    def spike_events(self) -> int:
        """At most this many spike events are recorded: the run fails beyond it."""
        return min(self.spike_event_bound, self.max_spike_events)

    @property
    def event_json_bytes(self) -> int:
        """The longest one spike event can be in JSON: its time, sender and batch entry."""
        return _digits(self.steps - 1) + _digits(max(1, self.recorded_neurons) - 1) + _digits(self.batch - 1) + 3

    @property
    def record_bytes(self) -> int:
        return self.voltage_values * FLOAT_BYTES + self.spike_events * EVENT_BYTES + self.count_values * 8

    @property
    def result_json_bytes(self) -> int:
        counts = self.count_values * (_digits(self.steps) + 1)
        return self.voltage_values * FLOAT_JSON_BYTES + self.spike_events * self.event_json_bytes + counts + RESULT_OVERHEAD

    @property
    def result_npz_bytes(self) -> int:
        return self.record_bytes + RESULT_OVERHEAD

    @property
    def result_bytes(self) -> int:
        return max(self.result_json_bytes, self.result_npz_bytes)

    def summary(self) -> dict[str, Any]:
        """The figures the API reports for a validated request."""
        return {
            "synaptic_ops": self.synaptic_ops,
            "step_ops": self.step_ops,
            "neuron_steps": self.neuron_steps,
            "chunk_steps": self.chunk_steps,
            "chunk_bytes": self.chunk_bytes,
            "spike_event_bound": self.spike_event_bound,
            "max_spike_events": self.spike_events,
            "record_bytes": self.record_bytes,
            "result_bytes": self.result_bytes,
        }


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
    if plan.is_neuron:
        activation = out * (1 + (FLOAT_BYTES * STATE_FIELDS[kind] if record_voltages else 0))
    stepped = _engine_kind(layer) in STEPPED_LAYERS
    return LayerCost(loc or ("network", "layers", plan.index), plan.name, kind, ops, activation, workspace, stepped)


def _engine_kind(layer: Any) -> str:
    """The layer's type, or ``<type>:delta`` for a box LIF with delta synapses (which the fused
    LIF kernels do not run: its steps take the eager path, unless it is refractory)."""
    delta = getattr(getattr(layer, "params", None), "synapse", None) == "delta"
    return f"{layer.type}:delta" if delta else layer.type


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
        neurons_by_type=_neurons_by_type(network.layers, plan),
        fixed_bytes=source.fixed_bytes,
        inputs=[source],
    )


def _neurons_by_type(layers: Any, plan: "Plan") -> dict[str, int]:
    counts: dict[str, int] = {}
    for layer, layer_plan in zip(layers, plan.layers, strict=True):
        if layer_plan.is_neuron:
            kind = _engine_kind(layer)
            counts[kind] = counts.get(kind, 0) + layer_plan.neurons
    return counts


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
    for edge in graph.edges:
        layers.append(LayerCost(edge.loc, edge.name, edge.type, edge.synapses * (max_count.get(edge.source) or 1), 0))
        model = network.edges[edge.index]
        per_synapse = FLOAT_BYTES  # the target (sparse) or the weight (dense)
        if edge.type not in ("dense", "one_to_one"):
            per_synapse += FLOAT_BYTES * (_drawn(getattr(model, "weight", None)) or "weight" in edge.arrays)
            per_synapse += FLOAT_BYTES * (edge.min_delay != edge.max_delay)
            fixed += 8 * (edge.n_pre + 1)
        fixed += edge.synapses * per_synapse
        build += _build_ops(edge)
    for layer_plan in plan.layers:  # future input in the delay buffer
        fixed += graph.max_delay_into(layer_plan.name) * math.prod(layer_plan.in_shape) * FLOAT_BYTES * plan.batch_size
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
    return Cost(
        steps=plan.steps,
        batch=plan.batch_size,
        layers=layers,
        input_bytes=sum(source.activation_bytes for source in inputs)
        + sum(math.prod(layer_plan.in_shape) for layer_plan in plan.layers) * FLOAT_BYTES,  # each node's summed input
        neuron_steps=plan.neuron_steps,
        neurons_by_type=_neurons_by_type(nodes, plan),
        fixed_bytes=fixed,
        build_ops=build,
        pass_calls=(len(plan.layers) + len(graph.sources) + len(graph.edges)) / (graph.pass_steps or MAX_CHUNK_STEPS),
        inputs=inputs,
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
