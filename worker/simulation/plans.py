"""What planning a request learns: the plan the runner executes and its cost, as plain data.

The bottom of the planning modules: ``worker.simulation.checks``, ``cost``, ``chain_plan`` and
``graph_plan`` fill these in, and the runner, the builder and the API read them; this module
imports none of them. ``Cost``'s properties are the cost model's figures (``worker.simulation.cost``
says how each is computed from a request); the rates below size chunks, never refuse jobs.
"""

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worker.simulation.errors import Loc
from worker.simulation.request import NEURON_TYPES, NON_SPIKING_TYPES


@dataclass
class ChannelPlan:
    """A synaptic channel of a population: the synapse of the edges that share it."""

    synapse: str  # its type in worker.registry.SYNAPSE_MODELS
    conductance: bool
    tau_syn: float
    e_rev: float
    initial: Any  # the value at step 0: None (0), a number, an InitSpec, or decoded in ``array``
    array: np.ndarray | None = None


@dataclass
class LayerPlan:
    index: int
    name: str
    type: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # decoded inline weights and per-neuron params
    channels: list[ChannelPlan] = field(default_factory=list)  # a population's synaptic channels (its input's 1 + C rows)
    network_kernel: bool = False  # a population the network kernel can step (worker.engine.network)

    @property
    def is_neuron(self) -> bool:
        return self.type in NEURON_TYPES

    @property
    def spikes(self) -> bool:
        return self.is_neuron and self.type not in NON_SPIKING_TYPES

    @property
    def neurons(self) -> int:
        return math.prod(self.out_shape) if self.is_neuron else 0


@dataclass
class Plan:
    """What the check of a request learned: everything the runner needs besides the request."""

    steps: int
    batch: int | None
    input_shape: tuple[int, ...]
    layers: list[LayerPlan]
    record_spikes: list[str]
    record_voltages: dict[str, np.ndarray | None]  # layer -> kept flat neuron indices (None: all)
    input_array: np.ndarray | None = None  # decoded tensor values, or constant values and Poisson rates as given (broadcasting)
    cost: "Cost | None" = None  # set by the chain's or the graph's check
    record_live: list[str] = field(default_factory=list)  # recorded layers streamed chunk by chunk
    graph: "GraphPlan | None" = None  # a graph network's sources, edges and passes; None for a chain of layers
    warnings: list[str] = field(default_factory=list)  # what a valid request may not mean (a NIR import's notes)

    @property
    def batch_size(self) -> int:
        return self.batch or 1

    @property
    def neurons(self) -> int:
        return sum(layer.neurons for layer in self.layers)

    @property
    def neuron_steps(self) -> int:
        return self.neurons * self.batch_size * self.steps

    def layer(self, name: str) -> LayerPlan:
        return next(layer for layer in self.layers if layer.name == name)

    @property
    def network_kernel(self) -> bool:
        """A graph the network kernel can step (``worker.engine.network``, on the CPU): one network,
        every node a population it steps (``LayerPlan.network_kernel``) or an input of spikes or
        counts (at most 255 a step: ``checks.check_source``)."""
        return (
            self.graph is not None
            and self.batch_size == 1
            and all(layer.network_kernel for layer in self.layers)
            and all(source.max_count is not None for source in self.graph.sources)
        )


@dataclass
class SourcePlan:
    index: int  # in network.nodes
    name: str
    type: str
    shape: tuple[int, ...]
    array: np.ndarray | None  # decoded values (tensor), or as given and broadcasting to the shape (constant, Poisson rates)
    max_count: int | None  # the most spikes a feature carries in a step; None: float values

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class EdgePlan:
    index: int  # in network.edges
    name: str
    type: str
    source: str
    target: str
    n_pre: int
    n_post: int
    synapses: int  # exact, or for pairwise Bernoulli an upper bound
    min_delay: int
    max_delay: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # decoded weight, pre, post, delay
    channel: int = 0  # the target's input row it adds to: 0 the delta input, 1 + k its channel k
    plastic: bool = False  # its weights change (a plasticity rule): it runs step by step
    snapshots: list[int] = field(default_factory=list)  # plastic: the steps after which its weights are recorded

    @property
    def loc(self) -> Loc:
        return ("network", "edges", self.index)


@dataclass
class GraphPlan:
    sources: list[SourcePlan]
    edges: list[EdgePlan]
    order: list[str]  # node names, in the order they run within a pass
    pass_steps: int | None  # steps per pass; None: no cycle, a whole chunk at once

    def into(self, name: str) -> list[EdgePlan]:
        return [edge for edge in self.edges if edge.target == name]

    def max_delay_into(self, name: str) -> int:
        return max((edge.max_delay for edge in self.into(name)), default=0)

    @property
    def plastic(self) -> list[EdgePlan]:
        return [edge for edge in self.edges if edge.plastic]


FLOAT_BYTES = 4
INDEX_BYTES = 4  # a synapse's source or target (int32) in the result and in the worker
EVENT_BYTES = 3 * 8  # times, senders and batch as int64 in the NPZ (and in the worker's memory)
FLOAT_JSON_BYTES = 24  # the longest float32 written as JSON: "-1.0000000116860974e-05,"

CHUNK_BUDGET_BYTES = 256 * 2**20  # activations of one chunk, all layers together
MAX_CHUNK_STEPS = 1000
# A graph the network kernel steps takes one call per chunk whatever its length, and the runner's
# work between chunks (recording, progress, the cancel check) is then most of the cost of a short
# one: its chunks may be longer.
MAX_KERNEL_CHUNK_STEPS = 20_000
# The chunk's length is also bounded by an estimate of its run time, so that progress, cancels
# and time limits are seen at least about every CHUNK_TARGET_S. Rates measured on one core of a
# 2-core x86-64 VM (benchmarks/RESULTS.md); slower machines take proportionally longer chunks.
CHUNK_TARGET_S = 0.5
# Feed-forward synaptic layers run once per chunk (one GEMM or convolution over all its rows, or
# the event kernels, at 1e11 multiply-adds/s measured for the GEMM); a recurrent layer's product
# is one small GEMM per step.
SYNAPTIC_OPS_PER_S = {"chunk": 2e10, "step": 2e9}
RECORDED_NEURON_STEPS_PER_S = 5e8  # finding and counting the spikes of recorded layers
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
    stepped: bool = False  # its step loop runs in Python (no kernel for its whole sequence)
    per_step: bool = False  # its synaptic product runs once per step (recurrent weights), not once per chunk
    fixed_bytes: int = 0  # held for the whole run (an input's per-feature tables, a tensor's values)


@dataclass
class Cost:
    steps: int
    batch: int
    layers: list[LayerCost]
    input_bytes: int  # one step of input, per batch entry
    neuron_steps: int
    neuron_seconds: float = 0.0  # updating every neuron once, per batch entry (fused kernels or the eager step)
    spike_event_bound: int = 0
    max_spike_events: int = 0
    voltage_values: int = 0
    count_values: int = 0
    recorded_neurons: int = 0
    fixed_bytes: int = 0  # allocated once for the run: a graph's synapses, delay buffers
    build_ops: int = 0  # drawing a graph's connectivity: random numbers drawn
    pass_calls: float = 0.0  # a graph's kernel calls per step: (nodes + edges) / steps per pass
    max_chunk_steps: int = MAX_CHUNK_STEPS
    inputs: list[LayerCost] = field(default_factory=list)  # the inputs' figures (their fixed bytes are in fixed_bytes)
    weight_values: int = 0  # plastic edges' recorded weights: the final ones and the snapshots
    weight_synapses: int = 0  # plastic edges' synapses, whose source and target the result lists
    weight_neurons: int = 0  # the most neurons on either side of a plastic edge (the indices' width in JSON)
    weight_loc: Loc = ("network", "edges")  # where a refusal for the weights' size points: the largest plastic edge

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
        neuron_s = self.neuron_seconds * self.batch
        recording_s = self.count_values / RECORDED_NEURON_STEPS_PER_S
        synaptic_s = sum(
            layer.ops * self.batch / SYNAPTIC_OPS_PER_S["step" if layer.per_step else "chunk"] for layer in self.layers
        )
        stepped = sum(layer.stepped for layer in self.layers)
        return synaptic_s + neuron_s + recording_s + STEP_OVERHEAD_S * (stepped + self.pass_calls)

    @property
    def chunk_steps(self) -> int:
        by_memory = CHUNK_BUDGET_BYTES // max(1, self.step_bytes)
        step_seconds = self.step_seconds
        by_time = int(CHUNK_TARGET_S / step_seconds) if step_seconds > 0 else self.max_chunk_steps
        return max(1, min(self.steps, self.max_chunk_steps, by_memory, by_time))

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
    def weight_bytes(self) -> int:
        return self.weight_values * FLOAT_BYTES + self.weight_synapses * 2 * INDEX_BYTES

    @property
    def record_bytes(self) -> int:
        return self.voltage_values * FLOAT_BYTES + self.spike_events * EVENT_BYTES + self.count_values * 8 + self.weight_bytes

    @property
    def result_json_bytes(self) -> int:
        counts = self.count_values * (_digits(self.steps) + 1)
        weights = self.weight_values * FLOAT_JSON_BYTES + self.weight_synapses * 2 * (_digits(self.weight_neurons) + 1)
        events = self.spike_events * self.event_json_bytes
        return self.voltage_values * FLOAT_JSON_BYTES + events + counts + weights + RESULT_OVERHEAD

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
