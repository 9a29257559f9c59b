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
rules from counter-based draws of their own), so every device starts from the same network; the
sums are the same whatever the chunking, and a request's passes and chunks are fixed by the
request alone, so a rerun gives the same bits.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from worker.engine import projections as proj
from worker.engine.module import SequenceModule, cast_params
from worker.engine.synapses import Linear
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


class GraphEdge:
    """One edge, built: ``propagate`` adds a pass's output of its source to its target's ring."""

    def __init__(
        self,
        plan: EdgePlan,
        model: Any,
        generator: torch.Generator,
        seed: int,
        device: torch.device,
        should_stop: Callable[[], None] | None = None,
    ) -> None:
        self.plan = plan
        self.should_stop = should_stop
        self.dense: Linear | None = None  # the chain's linear layer: event-driven or one product, as the activity says
        self.elementwise: torch.Tensor | None = None  # one_to_one: a weight, or one per neuron
        self.projection: proj.Projection | None = None
        self.delay = model.delay if isinstance(model.delay, int) else 0
        self.identity = isinstance(model, IdentityEdge)
        if self.identity:
            return
        if isinstance(model, DenseEdge):
            bound = 1 / math.sqrt(plan.n_pre)  # PyTorch's Linear initialisation
            weight = draw_weight(model.weight, (plan.n_post, plan.n_pre), bound, generator, plan.arrays.get("weight"))
            self.dense = Linear(weight, None).to(device)
        elif isinstance(model, OneToOneEdge) and not isinstance(model.delay, DelayRange):
            self.elementwise = self._weights(model.weight, plan.n_post, generator).to(device)
        else:
            self.projection = self._projection(model, generator, seed).on(device)

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
        for layer in plan.layers:
            node = network.nodes[layer.index]
            if isinstance(node, IzhikevichPopulation):
                node = node.model_copy(update={"v0": None})  # v0 is set on the state below
            module = build_layer(node, layer, generator, request.dt, layer.name in record_states)
            if isinstance(module, SequenceModule):
                module.bool_spikes = True
                self.initial_v[layer.name] = self._initial_v(
                    network.nodes[layer.index], layer.out_shape, generator, layer.arrays.get("v0")
                )
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
            self.edges.append(GraphEdge(edge_plan, model, generator, request.seed, device, should_stop))
        self.in_shapes = {layer.name: layer.in_shape for layer in plan.layers}
        self.names = [layer.name for layer in plan.layers]
        self.direct: dict[str, str] = {}  # node -> the source whose output it takes as it is
        for name in self.names:
            into = graph.into(name)
            if len(into) == 1 and into[0].type == "identity" and into[0].max_delay == 0:
                self.direct[name] = into[0].source
        # what each node's output feeds through a ring (a node taking it directly needs no edge run)
        self.feeds: dict[str, list[GraphEdge]] = {}
        for edge in self.edges:
            if self.direct.get(edge.plan.target) != edge.plan.source:
                self.feeds.setdefault(edge.plan.source, []).append(edge)
        self.pass_steps = graph.pass_steps
        self.device = device
        self.rings: dict[str, proj.DelayRing] = {}
        self.ring_steps = 0  # the steps the rings were sized for (a pass)

    @staticmethod
    def _initial_v(node: Any, shape: tuple[int, ...], generator: torch.Generator, decoded: Any) -> torch.Tensor | None:
        if node.v0 is None:
            return None
        if isinstance(node.v0, InitSpec):
            return draw_weight(node.v0, shape, None, generator, None)
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
                self.rings[name] = proj.DelayRing(slots, self.batch, math.prod(shape), self.device)

    def _start_state(self, name: str, x: torch.Tensor) -> Any:
        module = self.modules[name]
        assert isinstance(module, SequenceModule)
        state = module.initial_state(x[0], cast_params(module.p, x))
        v0 = self.initial_v[name]
        if v0 is not None:
            state = state._replace(v=v0.to(x.device).expand_as(state.v).clone())
        return state

    def chunk(
        self, start: int, stop: int, states: list[Any] | None, should_stop: Callable[[int], None] | None = None
    ) -> tuple[list[torch.Tensor | None], list[Any]]:
        """Steps ``start .. stop - 1``; ``should_stop(step)`` is called before each pass after the
        first, and may raise to abandon the run."""
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
                        x = self.rings[name].take_steps(first, steps).reshape(steps, self.batch, *self.in_shapes[name])
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
                    edge.propagate(flat, first, self.rings[edge.plan.target])
        final: list[Any] = []
        for name in self.names:
            pieces = recorded.get(name)
            if pieces:  # the states of every step, as the chain's modules return them
                final.append(type(pieces[0])(*(torch.cat(values) for values in zip(*pieces, strict=True))))
            else:
                final.append(current.get(name))
        return [torch.cat(outputs[name]) if name in outputs else None for name in self.names], final
