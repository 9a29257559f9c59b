"""Runs a network given as a graph: inputs, populations, layer nodes and the edges between them.

Every node that adds up its edges owns a ``DelayRing``, the input of its coming steps; every edge
adds its source's output into its target's ring at the steps it arrives (``t + delay``). A run
goes in passes of ``GraphPlan.pass_steps`` steps (a whole chunk when the graph has no cycle): in
each pass every node runs once over all of the pass's steps, in ``GraphPlan.order``, taking its
input from its ring (or, with one undelayed identity edge, its source's output as it is) and
handing its output to its edges. A pass is never longer than the shortest delay on a cycle, so
all the input a pass needs exists before the pass reaches it.

Edges: ``identity`` passes values as they are; ``dense`` is the chain's linear layer over all of
a pass's rows (event-driven where the source spikes sparsely, so its sums do not depend on the
rows; the same module as a linear layer node, so either form of a network gives the same bits);
``one_to_one`` with one delay multiplies elementwise; every other edge is a sparse
``Projection`` (compressed rows by source neuron) whose spikes a kernel (C, or Triton on CUDA)
adds in a fixed order. Connectivity, weights, delays and initial voltages are drawn on the CPU
from the request's seed (a torch generator for nodes first, then edges, in order; the degree
rules from counter-based draws of their own), so every device starts from the same network. A
ring slot sums its inputs in the order the passes deliver them, and a chunk's passes start with
the chunk (so chunks of other lengths can round differently where two edges reach a slot); a
request's passes and chunks are fixed by the request alone, so a rerun gives the same bits.

A population of ``lif_channels`` takes its input in rows, a ring per row: the delta input, then
one per synaptic channel (an edge adds to its channel's ring). A plastic edge
(``worker.engine.plasticity``) runs in each step's plasticity phase, after every node has run the
step, so a graph with one runs in passes of one step. On the CPU, a graph of ``lif_channels``
populations (or Brunel's box neurons: ``graph_plan.network_kernel_steps``) and spike inputs runs
in the network kernel instead (``worker.engine.network``): the same passes in one C call per
chunk, bit for bit.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from worker.engine import projections as proj
from worker.engine.lif_channels import LIFChannels
from worker.engine.lif_refrac import LIFBoxRefrac
from worker.engine.module import SequenceModule, cast_params
from worker.engine.network import KernelEdge, KernelPopulation, NetworkKernel
from worker.engine.network import library as network_library
from worker.engine.plasticity import PlasticProjection
from worker.engine.synapses import Linear
from worker.engine_options import ENGINE
from worker.simulation.build import InputStream, build_layer, draw_weight
from worker.simulation.plans import EdgePlan, GraphPlan, Plan
from worker.simulation.request import (
    DelayRange,
    DenseEdge,
    FixedInDegreeEdge,
    FixedOutDegreeEdge,
    GraphNetwork,
    IdentityEdge,
    InitSpec,
    IzhikevichPopulation,
    JobRequest,
    OneToOneEdge,
    PairwiseBernoulliEdge,
    SparseEdge,
)
from worker.simulation.results import WeightResult


class GraphEdge:
    """One edge, built: ``propagate`` adds a pass's output of its source to its target's ring."""

    def __init__(
        self,
        plan: EdgePlan,
        model: Any,
        generator: torch.Generator,
        seed: int,
        dt: float,
        device: torch.device,
        should_stop: Callable[[], None] | None = None,
    ) -> None:
        self.plan = plan
        self.should_stop = should_stop
        self.dense: Linear | None = None  # the chain's linear layer: event-driven or one product, as the activity says
        self.elementwise: torch.Tensor | None = None  # one_to_one: a weight, or one per neuron
        self.projection: proj.Projection | None = None
        self.plastic: PlasticProjection | None = None  # its weights change: it runs in the step's plasticity phase
        self.delay = model.delay if isinstance(model.delay, int) else 0
        self.identity = isinstance(model, IdentityEdge)
        if self.identity:
            return
        if plan.plastic:
            self.plastic = PlasticProjection.of(self._plastic_projection(model, generator, seed), model.plasticity, dt)
            self.plastic = self.plastic.on(device)
        elif isinstance(model, DenseEdge):
            bound = 1 / math.sqrt(plan.n_pre)  # PyTorch's Linear initialisation
            weight = draw_weight(model.weight, (plan.n_post, plan.n_pre), bound, generator, plan.arrays.get("weight"))
            self.dense = Linear(weight, None).to(device)
        elif isinstance(model, OneToOneEdge) and not isinstance(model.delay, DelayRange):
            self.elementwise = self._weights(model.weight, plan.n_post, generator).to(device)
        else:
            self.projection = self._projection(model, generator, seed).on(device)

    def _plastic_projection(self, model: Any, generator: torch.Generator, seed: int) -> proj.Projection:
        """A plastic edge's synapses as a projection, whatever its type (a dense edge: every pair)."""
        plan = self.plan
        if isinstance(model, DenseEdge):
            bound = 1 / math.sqrt(plan.n_pre)  # PyTorch's Linear initialisation, as the dense edge's
            weight = draw_weight(model.weight, (plan.n_post, plan.n_pre), bound, generator, plan.arrays.get("weight"))
            return proj.all_to_all(plan.n_pre, plan.n_post, weight=weight.T.contiguous(), delay=self.delay)
        return self._projection(model, generator, seed)

    def _weights(self, value: Any, count: int, generator: torch.Generator) -> torch.Tensor:
        """One weight (0-dim) or one per synapse, in the order the synapses were drawn."""
        if "weight" in self.plan.arrays:
            return torch.from_numpy(self.plan.arrays["weight"].copy())
        if isinstance(value, InitSpec) and value.init != "constant":
            return draw_weight(value, (count,), None, generator, None)
        return torch.tensor(value.value if isinstance(value, InitSpec) else float(value), dtype=torch.float32)

    def _projection(self, model: Any, generator: torch.Generator, seed: int) -> proj.Projection:
        plan = self.plan
        same = plan.source == plan.target
        autapses = getattr(model, "autapses", True) or not same
        if isinstance(model, (FixedInDegreeEdge, FixedOutDegreeEdge)):
            rule = proj.fixed_in_degree if isinstance(model, FixedInDegreeEdge) else proj.fixed_out_degree
            # counter-based draws keyed by the seed, one stream per edge
            built = rule(plan.n_pre, plan.n_post, model.k, seed, plan.index, autapses=autapses, multapses=model.multapses)
        elif isinstance(model, PairwiseBernoulliEdge):
            built = proj.pairwise_bernoulli(
                plan.n_pre, plan.n_post, model.p, generator, autapses=autapses, should_stop=self.should_stop
            )
            if built.synapses > plan.synapses:
                raise ValueError(f"edge {plan.name!r} drew {built.synapses} synapses, over its bound of {plan.synapses}")
        elif isinstance(model, OneToOneEdge):
            built = proj.one_to_one(plan.n_pre)
        else:
            assert isinstance(model, SparseEdge)
            pre, post = (torch.from_numpy(plan.arrays[key]) for key in ("pre", "post"))
            delays = torch.from_numpy(plan.arrays["delay"]) if "delay" in plan.arrays else self.delay
            weights = self._weights(model.weight, plan.synapses, generator)
            return proj.from_pairs(pre, post, plan.n_pre, plan.n_post, weights, delays)
        # weights and delays drawn per synapse follow the synapses' stored order (by source, then target)
        weight = self._weights(model.weight, built.synapses, generator)
        if isinstance(model.delay, DelayRange):
            delay = torch.randint(
                model.delay.low, model.delay.high + 1, (built.synapses,), generator=generator, dtype=torch.int32
            )
        else:
            delay = torch.tensor(model.delay, dtype=torch.int32)
        return dataclasses.replace(built, weight=weight, delay=delay)

    def as_projection(self) -> proj.Projection:
        """An identity, one-to-one or dense edge as a projection (for the network kernel)."""
        n_pre, n_post = self.plan.n_pre, self.plan.n_post
        if self.dense is not None:
            return proj.all_to_all(n_pre, n_post, weight=self.dense.weight_t.cpu(), delay=self.delay)
        if self.identity:
            return proj.one_to_one(n_post, delay=self.delay)
        assert self.elementwise is not None
        weight = self.elementwise.cpu()
        return dataclasses.replace(proj.one_to_one(n_post, delay=self.delay), weight=weight if weight.dim() else weight.clone())

    def propagate(self, output: torch.Tensor, step: int, ring: proj.DelayRing) -> None:
        """Adds ``output`` (steps, batch, n_pre) of steps ``step ..`` to ``ring``."""
        if self.identity:
            ring.add(step + self.delay, output.float())
        elif self.projection is not None:
            proj.project(output, self.projection, ring, step)
        elif self.dense is not None:
            ring.add(step + self.delay, self.dense(output))
        else:
            assert self.elementwise is not None
            ring.add(step + self.delay, output.float() * self.elementwise)


# The network kernel's steps between two questions whether to stop (a cancel, the time limit),
# rounded down to whole passes: a call costs tens of microseconds, a thousand of Brunel's steps
# about 0.1 s.
KERNEL_RUN_STEPS = 1000


def network_kernel_runs(plan: Plan, device: torch.device) -> bool:
    """Whether the network kernel steps this graph: on the CPU with the fused kernels on, one
    network (no batch), every node a population it steps or a spike input (``Plan.network_kernel``)."""
    return device.type == "cpu" and ENGINE.fused and plan.network_kernel and network_library() is not None


def input_stream(index: int, nodes: int) -> int:
    """The Poisson stream of the input at ``index`` (``nodes``: the top-level input): the top-level
    input draws as a chain's input does (stream 0), input nodes from streams 1, 2, ..."""
    return 0 if index == nodes else index + 1


class GraphRun:
    """A graph network, built: ``chunk(start, stop, states)`` runs steps ``start .. stop - 1`` and
    returns each population's and layer node's output and state (in ``plan.layers`` order; only
    the outputs of the nodes named in ``keep``, None for the others), like the chain's
    ``SequentialState``. Populations named in ``record_states`` return the state of every step.
    ``should_stop()`` is called between the edges it builds (and within a large Bernoulli draw)
    and may raise to abandon the build.

    A node with one identity edge into it, of no delay, takes its source's output of the same
    pass as it is (spikes stay spikes, so a layer node after a population runs event-driven, as
    in a chain); every other node adds up what its edges put in its ring."""

    def __init__(
        self,
        request: JobRequest,
        plan: Plan,
        device: torch.device,
        record_states: frozenset[str] = frozenset(),
        keep: frozenset[str] | None = None,
        should_stop: Callable[[], None] | None = None,
    ) -> None:
        network = request.network
        assert isinstance(network, GraphNetwork) and plan.graph is not None
        graph: GraphPlan = plan.graph
        self.graph = graph
        self.batch = plan.batch_size
        self.record_states = record_states
        self.keep = frozenset(layer.name for layer in plan.layers) if keep is None else keep
        generator = torch.Generator().manual_seed(request.seed)
        self.modules: dict[str, torch.nn.Module] = {}
        self.initial_v: dict[str, torch.Tensor | None] = {}
        self.initial_g: dict[str, list[torch.Tensor | None]] = {}  # per channel: its value at step 0 (None: 0)
        for layer in plan.layers:
            node = network.nodes[layer.index]
            if isinstance(node, IzhikevichPopulation):
                node = node.model_copy(update={"v0": None})  # v0 is set on the state below
            module = build_layer(node, layer, generator, request.dt, layer.name in record_states)
            if isinstance(module, SequenceModule):
                module.bool_spikes = True
                population: Any = network.nodes[layer.index]
                self.initial_v[layer.name] = self._initial_value(
                    population.v0, layer.out_shape, generator, layer.arrays.get("v0")
                )
                self.initial_g[layer.name] = [
                    self._initial_value(channel.initial, layer.out_shape, generator, channel.array) for channel in layer.channels
                ]
            self.modules[layer.name] = module.to(device)
        self.sources = {
            source.name: InputStream(
                network.nodes[source.index] if source.index < len(network.nodes) else request.input,
                source.shape, source.array, plan.batch, request, device, input_stream(source.index, len(network.nodes)),
            )
            for source in graph.sources
        }  # fmt: skip
        self.edges: list[GraphEdge] = []
        for edge_plan in graph.edges:
            if should_stop is not None:
                should_stop()
            model = network.edges[edge_plan.index]
            self.edges.append(GraphEdge(edge_plan, model, generator, request.seed, request.dt, device, should_stop))
        self.in_shapes = {layer.name: layer.in_shape for layer in plan.layers}
        self.rows = {layer.name: 1 + len(layer.channels) for layer in plan.layers}  # its input's rows: delta, channels
        self.names = [layer.name for layer in plan.layers]
        self.direct: dict[str, str] = {}  # node -> the source whose output it takes as it is
        for name in self.names:
            into = graph.into(name)
            if len(into) == 1 and into[0].type == "identity" and into[0].max_delay == 0 and self.rows[name] == 1:
                self.direct[name] = into[0].source
        # what each node's output feeds through a ring (a node taking it directly needs no edge run; a
        # plastic edge runs in the plasticity phase)
        self.feeds: dict[str, list[GraphEdge]] = {}
        for edge in self.edges:
            if self.direct.get(edge.plan.target) != edge.plan.source and edge.plastic is None:
                self.feeds.setdefault(edge.plan.source, []).append(edge)
        self.plastic = [edge for edge in self.edges if edge.plastic is not None]
        self.snapshots: dict[str, list[tuple[int, torch.Tensor]]] = {edge.plan.name: [] for edge in self.plastic}
        self.pass_steps = graph.pass_steps
        self.device = device
        self.rings: dict[str, list[proj.DelayRing]] = {}  # per node, a ring per row of its input
        self.ring_steps = 0  # the steps the rings were sized for (a pass)
        self.kernel_runs = network_kernel_runs(plan, device)
        self.kernel: NetworkKernel | None = None  # made at the first chunk, whose passes size the rings

    @staticmethod
    def _initial_value(value: Any, shape: tuple[int, ...], generator: torch.Generator, decoded: Any) -> torch.Tensor | None:
        """A population's initial voltage or channel value: drawn from ``generator``, or as given."""
        if value is None:
            return None
        if isinstance(value, InitSpec):
            return draw_weight(value, shape, None, generator, None)
        return torch.from_numpy(decoded.copy()).broadcast_to(shape)

    def _rings(self, steps: int) -> None:
        """Delay rings for passes of up to ``steps`` steps (made once, at the first chunk)."""
        if self.ring_steps:
            assert steps <= self.ring_steps, "a pass never outgrows the rings"
            return
        self.ring_steps = steps
        for name, shape in self.in_shapes.items():
            if name not in self.direct:
                slots = self.graph.max_delay_into(name) + steps
                self.rings[name] = [
                    proj.DelayRing(slots, self.batch, math.prod(shape), self.device) for _ in range(self.rows[name])
                ]

    def _start_state(self, name: str, x: torch.Tensor) -> Any:
        module = self.modules[name]
        assert isinstance(module, SequenceModule)
        state = module.initial_state(x[0], cast_params(module.p, x))
        v0 = self.initial_v[name]
        if v0 is not None:
            state = state._replace(v=v0.to(x.device).expand_as(state.v).clone())
        if any(g0 is not None for g0 in self.initial_g[name]):
            g = state.g.clone()
            for k, g0 in enumerate(self.initial_g[name]):
                if g0 is not None:
                    g[k] = g0.to(x.device).expand_as(g[k])
            state = state._replace(g=g)
        return state

    def _network_kernel(self, pass_steps: int) -> NetworkKernel:
        """This graph for the network kernel, in passes of ``pass_steps``: every node a population it
        steps or a spike input, every edge a projection (an identity, one-to-one or dense edge
        becomes one)."""
        order = self.graph.order
        populations = [name for name in order if name not in self.sources]
        index = {name: position for position, name in enumerate(populations)}
        self.direct = {}
        self._rings(pass_steps)
        kept = []
        for name in populations:
            module = self.modules[name]
            assert isinstance(module, (LIFChannels, LIFBoxRefrac)), "Plan.network_kernel admits no other population"
            kept.append(KernelPopulation(module, self.rings[name]))
        edges = []
        for edge in self.edges:
            source = order.index(edge.plan.source)
            kernel_edge = KernelEdge(source, index[edge.plan.target], edge.plan.channel, edge.projection, edge.plastic)
            if edge.projection is None and edge.plastic is None:
                kernel_edge.projection = edge.as_projection()
                kernel_edge.one_to_one = edge.dense is None  # an identity or one-to-one edge, which the runner multiplies
            edges.append(kernel_edge)
        nodes = [(index.get(name), math.prod(self.in_shapes[name]) if name in index else math.prod(self.sources[name].shape))
                 for name in order]  # fmt: skip
        self.kernel_order = populations
        return NetworkKernel(nodes, kept, edges, self.pass_steps)

    def _kernel_chunk(
        self, start: int, stop: int, states: list[Any] | None, should_stop: Callable[[int], None] | None
    ) -> tuple[list[torch.Tensor | None], list[Any]]:
        """``chunk`` by the network kernel, in runs that end where a weight snapshot is due and
        after about ``KERNEL_RUN_STEPS`` steps (whole passes: they start with the chunk), asking
        ``should_stop`` between them."""
        if self.kernel is None:
            self.kernel = self._network_kernel(self.pass_steps or stop - start)
        names = self.kernel_order
        by_name = dict(zip(self.names, states, strict=True)) if states is not None else {}
        current = [by_name.get(name) or self._start_state(name, self._zero_input(name)) for name in names]
        inputs = {k: self.sources[name].chunk(start, stop) for k, name in enumerate(self.graph.order) if name in self.sources}
        traced = frozenset(k for k, name in enumerate(names) if name in self.record_states)
        due = {step + 1 for edge in self.plastic for step in edge.plan.snapshots if start <= step < stop - 1}
        if self.pass_steps is not None:  # without a cycle a pass is the whole chunk
            run_steps = self.pass_steps * max(1, KERNEL_RUN_STEPS // self.pass_steps)
            due |= set(range(start + run_steps, stop, run_steps))
        spikes: list[list[torch.Tensor]] = [[] for _ in names]
        traces: list[list[torch.Tensor]] = [[] for _ in names]
        ends = sorted(due)
        for first, last in zip([start, *ends], [*ends, stop], strict=True):
            if should_stop is not None and first > start:
                should_stop(first)
            taken = {k: values[first - start : last - start] for k, values in inputs.items()}
            z, v, current = self.kernel.run(first, last - first, current, taken, traced)
            for k, (spiked, voltages) in enumerate(zip(z, v, strict=True)):
                spikes[k].append(spiked)
                if voltages is not None:
                    traces[k].append(voltages)
            if self.plastic:
                self._take_snapshots(last - 1)
        outputs, final = {}, {}
        for k, name in enumerate(names):
            shape = (stop - start, self.batch, *self.in_shapes[name])
            outputs[name] = torch.cat(spikes[k]).reshape(shape) if name in self.keep else None
            final[name] = current[k]
            if traces[k]:  # every step's voltage; the rest of the state as it ends (all the recorder reads)
                state = current[k]
                final[name] = state._replace(v=torch.cat(traces[k]).reshape(shape), **{
                    field: value[None] for field, value in state._asdict().items() if field != "v"
                })  # fmt: skip
        return [outputs[name] for name in self.names], [final[name] for name in self.names]

    def _zero_input(self, name: str) -> torch.Tensor:
        """A step's input of zeros, shaped as a population's (for its initial state): rows of
        channels for ``lif_channels``, the one input of any other model."""
        rows = (self.rows[name],) if isinstance(self.modules[name], LIFChannels) else ()
        return torch.zeros((1, *rows, self.batch, *self.in_shapes[name]), device=self.device)

    def _take_snapshots(self, step: int) -> None:
        if self.kernel is not None and any(step in edge.plan.snapshots for edge in self.plastic):
            self.kernel.flush()
        for edge in self.plastic:
            if step in edge.plan.snapshots:
                assert edge.plastic is not None
                self.snapshots[edge.plan.name].append((step, edge.plastic.weight.clone()))

    def _input(self, name: str, first: int, steps: int) -> torch.Tensor:
        """A node's input of steps ``first ..`` from its rings: (steps, batch, *shape), or with
        channels (steps, 1 + C, batch, *shape)."""
        taken = [ring.take_steps(first, steps) for ring in self.rings[name]]
        if len(taken) == 1:
            return taken[0].reshape(steps, self.batch, *self.in_shapes[name])
        return torch.stack(taken, dim=1).reshape(steps, len(taken), self.batch, *self.in_shapes[name])

    def _plasticity(self, step: int, produced: dict[str, torch.Tensor]) -> None:
        """The plasticity phase of ``step`` (a pass of one step, batch 1): every plastic edge's
        presynaptic events, then its postsynaptic ones (``worker.engine.plasticity``)."""
        for edge in self.plastic:
            assert edge.plastic is not None
            ring = self.rings[edge.plan.target][edge.plan.channel]
            deliver = ring.buffer[(step + 1) % ring.slots, 0]
            emitted, fired = (produced[name].reshape(-1) for name in (edge.plan.source, edge.plan.target))
            edge.plastic.step(step, emitted, fired, deliver)
        self._take_snapshots(step)

    def weights(self) -> dict[str, WeightResult]:
        """Every plastic edge's synapses, final weights and snapshots, after the run."""
        if self.kernel is not None:
            self.kernel.flush()
        results = {}
        for edge in self.plastic:
            assert edge.plastic is not None
            taken = self.snapshots[edge.plan.name]
            projection = edge.plastic.projection
            results[edge.plan.name] = WeightResult(
                pre=projection.pre.to(torch.int32).cpu().numpy(),
                post=projection.post.cpu().numpy(),
                final=projection.weight.cpu().numpy().copy(),
                steps=np.asarray([step for step, _ in taken], dtype=np.int64),
                snapshots=torch.stack([w for _, w in taken]).cpu().numpy()
                if taken
                else np.zeros((0, projection.synapses), dtype=np.float32),
            )
        return results

    def chunk(
        self, start: int, stop: int, states: list[Any] | None, should_stop: Callable[[int], None] | None = None
    ) -> tuple[list[torch.Tensor | None], list[Any]]:
        """Steps ``start .. stop - 1``; ``should_stop(step)`` is called before each pass after the
        first, and may raise to abandon the run."""
        if self.kernel_runs:
            return self._kernel_chunk(start, stop, states, should_stop)
        pass_steps = min(self.pass_steps or stop - start, stop - start)
        self._rings(self.pass_steps or stop - start)
        current = dict(zip(self.names, states, strict=True)) if states is not None else {}
        outputs: dict[str, list[torch.Tensor]] = {name: [] for name in self.names if name in self.keep}
        recorded: dict[str, list[Any]] = {name: [] for name in self.record_states}
        for first in range(start, stop, pass_steps):
            if should_stop is not None and first > start:
                should_stop(first)
            steps = min(pass_steps, stop - first)
            produced: dict[str, torch.Tensor] = {}  # this pass's outputs
            for name in self.graph.order:
                if name in self.sources:
                    output = self.sources[name].chunk(first, first + steps)
                else:
                    if name in self.direct:
                        x = produced[self.direct[name]].reshape(steps, self.batch, *self.in_shapes[name])
                    else:
                        x = self._input(name, first, steps)
                    module = self.modules[name]
                    if isinstance(module, SequenceModule):
                        state = current.get(name)
                        output, state = module(x, state if state is not None else self._start_state(name, x))
                        if name in recorded:
                            recorded[name].append(state)
                            state = type(state)(*(value[-1] for value in state))
                        current[name] = state
                    else:
                        output = module(x)
                    if name in outputs:
                        outputs[name].append(output)
                produced[name] = output
                flat = output.reshape(steps, self.batch, -1)
                for edge in self.feeds.get(name, ()):
                    edge.propagate(flat, first, self.rings[edge.plan.target][edge.plan.channel])
            if self.plastic:
                self._plasticity(first, produced)
        final: list[Any] = []
        for name in self.names:
            pieces = recorded.get(name)
            if pieces:  # the states of every step, as the chain's modules return them
                final.append(type(pieces[0])(*(torch.cat(values) for values in zip(*pieces, strict=True))))
            else:
                final.append(current.get(name))
        return [torch.cat(outputs[name]) if name in outputs else None for name in self.names], final
