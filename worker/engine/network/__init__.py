"""The network kernel: a graph of LIF populations with synaptic channels (``lif_channels``) or of
Brunel's box neurons (``lifbox_refrac`` with delta synapses), their sparse and plastic projections
and their spike inputs, stepped in one C call per chunk.

The graph runner (``worker.simulation.graph_runner``) steps such a graph in passes: of one step
where a cycle has a one-step delay (CUBA, COBA) or an edge is plastic, of the shortest delay on a
cycle otherwise (15 steps in Brunel's network), and Python around each node and edge of each pass
would cost far more than the work. This kernel does that work in C with OpenMP
(``network_kernels.c``), in the runner's passes: the same float32 operations in the same order,
every input summed in the same order, so its spikes, voltages and weights are the runner's bit for
bit (``tests/worker/engine/test_network.py``). It takes the engine's own objects: the
populations' modules and delay rings, the projections (``worker.engine.projections``) and plastic
projections (``worker.engine.plasticity``), and the inputs' spikes of each chunk.
"""

import ctypes
import math
import pathlib
from dataclasses import dataclass
from typing import Any

import torch

from worker.engine import native
from worker.engine.lif_channels import LIFChannels, LIFChannelsState
from worker.engine.lif_refrac import LIFBoxRefrac
from worker.engine.native import NativeLibrary
from worker.engine.plasticity import PlasticProjection
from worker.engine.projections import DelayRing, Projection

SOURCE = pathlib.Path(__file__).with_name("network_kernels.c")
# Below this much work per step (neurons plus synapses) one thread steps the graph: a team's
# barriers (several per step) cost more than they save on CUBA's 4,000 neurons.
PARALLEL_WORK = 200_000
# Plastic rows in vector registers where the library has them (AVX-512 or AVX2) and no row of the edge
# repeats a target; off, the scalar row: the same bits either way (the tests run both).
VECTOR = True

_float_p, _u8_p, _i32_p, _i64_p = (ctypes.POINTER(t) for t in (ctypes.c_float, ctypes.c_uint8, ctypes.c_int32, ctypes.c_int64))


class _Population(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_int64), ("channels", ctypes.c_int32), ("exact", ctypes.c_int32),
        ("v", _float_p), ("rho", _float_p), ("g", _float_p),
        ("v_leak", _float_p), ("v_th", _float_p), ("v_reset", _float_p), ("rho_reset", _float_p), ("membrane", _float_p),
        ("gain", _float_p), ("decay", _float_p), ("e_rev", _float_p), ("conductance", _u8_p),
        ("rings", ctypes.POINTER(_float_p)), ("slots", ctypes.c_int64),
        ("spikes", _u8_p), ("v_trace", _float_p), ("scratch", _float_p), ("uniform", ctypes.c_int32),
    ]  # fmt: skip


MAX_THREADS = 64  # the kernel's (network_kernels.c)
NO_SPIKE = -(2**31)  # network_kernels.c's mark of an empty place among a target's recent spikes ...
RECENT = 4  # ... and how many it holds a target
PENDING = 32  # per target of a plastic edge: its spikes held until every synapse into it has taken them


class _Node(ctypes.Structure):
    _fields_ = [
        ("population", ctypes.c_int32), ("n", ctypes.c_int64), ("input", _u8_p),
        ("fired", _i32_p), ("counts", _i64_p), ("now", _u8_p * 2),
    ]  # fmt: skip


class _Edge(ctypes.Structure):
    _fields_ = [
        ("source", ctypes.c_int32), ("target", ctypes.c_int32), ("row", ctypes.c_int32),
        ("n_pre", ctypes.c_int64), ("n_post", ctypes.c_int64),
        ("offsets", _i64_p), ("post", _i32_p), ("weight", _float_p), ("shared_weight", ctypes.c_float),
        ("delay", _i32_p), ("shared_delay", ctypes.c_int32),
        ("plastic", ctypes.c_int32), ("soft", ctypes.c_int32), ("nearest", ctypes.c_int32),
        ("by_post", _i32_p), ("pre_by_post", _i32_p), ("by_post_offsets", _i64_p),
        ("x_pre", _float_p), ("pre_stamp", _i64_p), ("table_pre", _float_p), ("horizon_pre", ctypes.c_int64),
        ("x_post", _float_p),
        ("decay_post", ctypes.c_float), ("a_pre", ctypes.c_float), ("a_post", ctypes.c_float), ("w_min", ctypes.c_float),
        ("w_max", ctypes.c_float), ("inv_span", ctypes.c_float),
        ("history", _u8_p), ("pending", _i32_p), ("pending_len", _i32_p), ("recent", _i32_p), ("vector", ctypes.c_int32),
        ("pending_size", ctypes.c_int32), ("one_to_one", ctypes.c_int32),
    ]  # fmt: skip


def _declare(lib: ctypes.CDLL) -> None:
    lib.network_run.argtypes = [
        ctypes.c_int64, ctypes.c_int64, ctypes.c_int32, ctypes.POINTER(_Node), ctypes.POINTER(_Population),
        _i64_p, _i32_p, ctypes.POINTER(_Edge), ctypes.c_int32, _i32_p, _i32_p, ctypes.c_int, ctypes.c_int, ctypes.c_int64,
    ]  # fmt: skip
    lib.network_run.restype = None
    lib.network_flush.argtypes = [ctypes.POINTER(_Edge), ctypes.c_int32, _i32_p]
    lib.network_flush.restype = None
    lib.network_vector_lanes.argtypes = []
    lib.network_vector_lanes.restype = ctypes.c_int32


LIBRARY = NativeLibrary(SOURCE, _declare, "graphs of lif_channels run in the Python graph runner")


def library() -> ctypes.CDLL | None:
    return native.load(LIBRARY)


def _rows_are_distinct(projection: Projection) -> bool:
    """Whether no row of ``projection`` holds a target twice (multapses put two side by side)."""
    post, offsets = projection.post, projection.offsets
    repeats = post[1:] == post[:-1]
    starts = offsets[1:-1]
    repeats[starts[(starts > 0) & (starts < post.numel())] - 1] = False  # pairs across two rows
    return not bool(repeats.any())


def _pointer(tensor: torch.Tensor | None, kind: Any) -> Any:
    return ctypes.cast(tensor.data_ptr(), kind) if tensor is not None else kind()


@dataclass
class KernelPopulation:
    """A population as the kernel steps it: its module (parameters, channels, dt) and its input's
    rings (the delta input, then one per channel; batch 1). A ``LIFBoxRefrac`` module (delta
    synapses, reset to a value: ``graph_plan.network_kernel_steps``) is stepped as a
    ``lif_channels`` population without channels."""

    module: LIFChannels | LIFBoxRefrac
    rings: list[DelayRing]

    @property
    def channels(self) -> int:
        return self.module.channels.size if isinstance(self.module, LIFChannels) else 0

    @property
    def exact(self) -> bool:
        return isinstance(self.module, LIFChannels) and self.module.p.integration == "exact"


@dataclass
class KernelEdge:
    """An edge: from node ``source`` to population ``target``, adding to row ``row`` of its input
    (0 the delta input, 1 + k channel k); a projection, or a plastic one."""

    source: int
    target: int
    row: int
    projection: Projection | None = None
    plastic: PlasticProjection | None = None
    one_to_one: bool = False  # synapse i from source i to target i, one delay: added as the runner adds it (weight * count)


@dataclass
class NetworkKernel:
    """A graph for the kernel: ``nodes`` in the order they run, each a population's index (into
    ``populations``) or None for an input of that many neurons; ``edges`` in the request's order.
    ``pass_steps``: the graph runner's passes (``GraphPlan.pass_steps``; None: a whole chunk),
    which the kernel takes alike so that every input sums in the runner's order; a graph with a
    plastic edge runs in passes of one step."""

    nodes: list[tuple[int | None, int]]
    populations: list[KernelPopulation]
    edges: list[KernelEdge]
    pass_steps: int | None = 1

    def __post_init__(self) -> None:
        lib = library()
        if lib is None:
            raise RuntimeError("the network kernel cannot be built here")
        self.lib = lib
        assert self.pass_steps == 1 or not any(edge.plastic for edge in self.edges), "plasticity runs a step at a time"
        self.params: list[dict[str, Any]] = []  # made at the first run, from the states' shapes
        self.history = [
            torch.zeros((edge.plastic.delay, edge.plastic.projection.n_pre), dtype=torch.uint8) if edge.plastic else None
            for edge in self.edges
        ]
        self.pending = [
            (torch.zeros((edge.plastic.projection.n_post, PENDING), dtype=torch.int32),
             torch.zeros(edge.plastic.projection.n_post, dtype=torch.int32),
             torch.full((edge.plastic.projection.n_post, RECENT), NO_SPIKE, dtype=torch.int32)) if edge.plastic else None
            for edge in self.edges
        ]  # fmt: skip
        self.c_edges = (_Edge * max(1, len(self.edges)))(*(self._edge(index) for index in range(len(self.edges))))
        feeds = [[index for index, edge in enumerate(self.edges) if edge.source == node and edge.plastic is None]
                 for node in range(len(self.nodes))]  # fmt: skip
        self.feed_offsets = torch.tensor([0, *torch.tensor([len(f) for f in feeds]).cumsum(0).tolist()], dtype=torch.int64)
        self.feeds = torch.tensor([index for f in feeds for index in f] or [0], dtype=torch.int32)
        plastic = [index for index, edge in enumerate(self.edges) if edge.plastic is not None]
        self.plastic = torch.tensor(plastic or [0], dtype=torch.int32)
        node_of = {population: k for k, (population, _) in enumerate(self.nodes) if population is not None}
        self.plastic_nodes = torch.tensor(
            [k for index in plastic for k in (self.edges[index].source, node_of[self.edges[index].target])] or [0, 0],
            dtype=torch.int32,
        )
        self.n_plastic = len(plastic)
        self.fired = [torch.zeros(2 * n, dtype=torch.int32) for _, n in self.nodes]
        self.counts = [torch.zeros(2 * MAX_THREADS, dtype=torch.int64) for _ in self.nodes]
        synapses = [edge.plastic.projection if edge.plastic else edge.projection for edge in self.edges]
        self.undelayed = any(bool((projection.delay == 0).any()) for projection in synapses if projection is not None)
        work = sum(n for _, n in self.nodes) + sum(projection.synapses for projection in synapses if projection is not None)
        self.parallel = work >= PARALLEL_WORK  # a team pays for its barriers

    @staticmethod
    def _parameters(population: KernelPopulation, shape: torch.Size) -> dict[str, Any]:
        """A population's parameters and coefficients, one per neuron (``shape``: its state's)."""
        values: dict[str, Any] = dict(population.module.kernel_arrays(shape, torch.zeros((), dtype=torch.float32)))
        values["rings"] = (_float_p * len(population.rings))(*(_pointer(r.buffer, _float_p) for r in population.rings))
        values["scratch"] = torch.empty(math.prod(shape))
        single = [values[name] for name in ("v_leak", "v_th", "v_reset", "rho_reset", "membrane")] + list(values["gain"])
        values["uniform"] = all(bool((value == value[0]).all()) for value in single)
        return values

    def _edge(self, index: int) -> _Edge:
        edge = self.edges[index]
        e = _Edge(source=edge.source, target=edge.target, row=edge.row)
        projection = edge.plastic.projection if edge.plastic is not None else edge.projection
        assert projection is not None
        e.n_pre, e.n_post = projection.n_pre, projection.n_post
        e.one_to_one = int(edge.one_to_one)
        e.offsets, e.post = _pointer(projection.offsets, _i64_p), _pointer(projection.post, _i32_p)
        shared_weight, shared_delay = projection.weight.dim() == 0, projection.delay.dim() == 0
        e.weight = _pointer(None if shared_weight else projection.weight, _float_p)
        e.shared_weight = float(projection.weight) if shared_weight else 0.0
        e.delay = _pointer(None if shared_delay else projection.delay, _i32_p)
        e.shared_delay = int(projection.delay) if shared_delay else 0
        if edge.plastic is not None:
            pp, c = edge.plastic, edge.plastic.constants
            e.plastic, e.soft, e.nearest = 1, int(pp.p.bounds == "soft"), int(pp.p.pairing == "nearest")
            e.by_post, e.pre_by_post = _pointer(pp.by_post, _i32_p), _pointer(pp.pre_by_post, _i32_p)
            e.by_post_offsets = _pointer(pp.by_post_offsets, _i64_p)
            e.x_pre, e.x_post = _pointer(pp.x_pre, _float_p), _pointer(pp.x_post, _float_p)
            e.pre_stamp, e.table_pre, e.horizon_pre = (
                _pointer(pp.pre_stamp, _i64_p),
                _pointer(c.decay_pre, _float_p),
                c.decay_pre.numel(),
            )
            for name in ("decay_post", "a_pre", "a_post", "w_min", "w_max", "inv_span"):
                setattr(e, name, float(getattr(c, name)))
            e.history = _pointer(self.history[index], _u8_p)
            pending = self.pending[index]
            assert pending is not None
            e.pending, e.pending_len, e.recent = (_pointer(t, _i32_p) for t in pending)
            e.pending_size = PENDING
            e.vector = int(VECTOR and self.lib.network_vector_lanes() > 1 and _rows_are_distinct(projection))
        return e

    def flush(self) -> None:
        """The plastic edges' weights caught up with every step run so far (the kernel applies a
        synapse's potentiations at its source's next spike): before they are read."""
        if self.n_plastic:
            self.lib.network_flush(self.c_edges, self.n_plastic, _pointer(self.plastic, _i32_p))

    def run(
        self, t0: int, steps: int, before: list[Any], inputs: dict[int, torch.Tensor], traced: frozenset[int]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None], list[Any]]:
        """Steps ``t0 .. t0 + steps - 1`` from the states ``before`` (one per population, its module's
        kind, batch 1; left as they are): each population's spikes (steps, n) as bool, the voltage
        after every step of those in ``traced`` (steps, n), and the states after. ``inputs``: per
        input node, its spikes or counts of these steps (steps, n) as bool or uint8. A chunk's
        passes start at ``t0``."""
        # copies: the kernel writes the state in place, and what the caller holds may be recorded already
        states = [
            LIFChannelsState(
                *(t.to(torch.float32, copy=True).contiguous()
                  for t in (state.v, state.rho, getattr(state, "g", state.v.new_zeros((0, *state.v.shape)))))
            )
            for state in before
        ]  # fmt: skip
        if not self.params:
            self.params = [self._parameters(p, s.v.shape) for p, s in zip(self.populations, states, strict=True)]
        spikes = [torch.empty((steps, state.v.numel()), dtype=torch.bool) for state in states]
        traces = [torch.empty((steps, s.v.numel())) if index in traced else None for index, s in enumerate(states)]
        held = []  # the inputs' bytes, alive until the call returns
        c_populations = (_Population * len(self.populations))()
        for index, (population, state, params) in enumerate(zip(self.populations, states, self.params, strict=True)):
            c = c_populations[index]
            c.n, c.channels, c.exact = state.v.numel(), population.channels, int(population.exact)
            c.v, c.rho, c.g = (_pointer(t, _float_p) for t in state)
            for name in ("v_leak", "v_th", "v_reset", "rho_reset", "membrane", "gain", "decay", "e_rev"):
                setattr(c, name, _pointer(params[name], _float_p))
            c.conductance = _pointer(params["conductance"], _u8_p)
            c.rings, c.slots = params["rings"], population.rings[0].slots
            c.spikes, c.v_trace = _pointer(spikes[index], _u8_p), _pointer(traces[index], _float_p)
            c.scratch, c.uniform = _pointer(params["scratch"], _float_p), int(params["uniform"])
        c_nodes = (_Node * len(self.nodes))()
        for k, (which, n) in enumerate(self.nodes):
            node = c_nodes[k]
            node.population, node.n = -1 if which is None else which, n
            node.fired, node.counts = _pointer(self.fired[k], _i32_p), _pointer(self.counts[k], _i64_p)
            if which is None:
                given = inputs[k].reshape(steps, n)
                counts = (given.view(torch.uint8) if given.dtype == torch.bool else given.to(torch.uint8)).contiguous()
                held.append(counts)
                node.input = _pointer(counts, _u8_p)
        self.lib.network_run(
            t0, steps, len(self.nodes), c_nodes, c_populations, _pointer(self.feed_offsets, _i64_p),
            _pointer(self.feeds, _i32_p), self.c_edges, self.n_plastic, _pointer(self.plastic, _i32_p),
            _pointer(self.plastic_nodes, _i32_p), torch.get_num_threads() if self.parallel else 1,
            int(self.undelayed), self.pass_steps or steps,
        )  # fmt: skip
        after = [type(old)(**{name: getattr(new, name) for name in old._fields}) for old, new in zip(before, states, strict=True)]
        return spikes, traces, after
