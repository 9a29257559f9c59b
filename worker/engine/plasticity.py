"""Spike-timing-dependent plasticity (STDP) on a sparse projection, event-driven.

A plastic projection keeps a weight per synapse (float32), a presynaptic trace per source neuron
and a postsynaptic trace per target neuron (pair-based STDP with exponential traces: Song, Miller
& Abbott 2000; Brian2's and NEST's ``stdp_synapse``). A source's spike at step n reaches the
target at step n + d (``d`` >= 1, one delay for the whole edge); its plasticity event is at step
e = n + d - 1, the last step before the target feels it, which makes a graph's delay of one step
Brian2's delay of zero, event for event. Within the step t of an edge's events, after every node
has run step t:

    1. the postsynaptic traces decay by a step: x_post *= exp(-dt / tau_post)
    2. presynaptic events (the source's spikes of step t - d + 1), source by source in index
       order: each synapse delivers its weight to the target's input of step t + 1, before it
       changes, then w += x_post of its target; then x_pre[i] jumps by a_pre ("all_to_all";
       "nearest": it is set to a_pre)
    3. postsynaptic events (the target's spikes of step t): x_post[j] jumps by a_post ("nearest":
       is set to it); then every synapse into j: w += x_pre(t) of its source

so a pre and a post spike of one step count as pre before post (potentiation), as in Brian2,
where on_pre runs before on_post. Every change is bounded: "hard" adds it and clips to
[w_min, w_max]; "soft" scales a rise by (w_max - w) / (w_max - w_min) and a fall by
(w - w_min) / (w_max - w_min) first.

A presynaptic trace is kept as its value just after its last jump and the step of that jump; k
steps later it is that value times D[k] = exp(-k dt / tau_pre) (a table of float32 factors,
``Constants.decay_pre``), and 0 from 25 time constants on (2^20 steps at most). So its value at
any past step is known, and the C network kernel applies a synapse's potentiations only at its
source's next event (Morrison et al. 2007's scheme, NEST's: a step then touches weights in rows,
never scattered through them), with the very values this eager form uses. The work of a step is
the synapses of its spikes and the decay of the postsynaptic traces: never synapses times steps.

``PlasticProjection.step`` is the event-driven form the graph runs; ``stdp_step_reference`` the
obvious one over a dense weight matrix, which the tests compare it with.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from worker.engine.parameter_types import STDPParameters
from worker.engine.projections import Projection

HORIZON_TIME_CONSTANTS = 25  # a trace is 0 this many time constants after its last jump (e^-25: 1.4e-11)
MAX_HORIZON = 2**20  # steps: the longest table of factors
NEVER = -(2**62)  # the step of a trace that never jumped: 0 at any step


class Constants(NamedTuple):
    """A rule's numbers as float32 values, so that every path (PyTorch here, C in the network
    kernel) computes with the same ones: the presynaptic trace's factors after k steps
    (``decay_pre[k]``, for k below the table's length, 0 beyond), the postsynaptic trace's factor
    per step, the jumps, the bounds and 1 / (w_max - w_min) (0 where the bounds meet)."""

    decay_pre: torch.Tensor
    decay_post: torch.Tensor
    a_pre: torch.Tensor
    a_post: torch.Tensor
    w_min: torch.Tensor
    w_max: torch.Tensor
    inv_span: torch.Tensor

    @classmethod
    def of(cls, p: STDPParameters, dt: float) -> "Constants":
        span = p.w_max - p.w_min
        values = (math.exp(-dt / p.tau_post), p.a_pre, p.a_post, p.w_min, p.w_max, 1.0 / span if span > 0 else 0.0)
        return cls(decay_table(p.tau_pre, dt), *(torch.tensor(v, dtype=torch.float32) for v in values))


def decay_table(tau: float, dt: float) -> torch.Tensor:
    """exp(-k dt / tau) for k = 0 .. horizon - 1, rounded to float32 once."""
    horizon = min(MAX_HORIZON, math.ceil(HORIZON_TIME_CONSTANTS * tau / dt) + 1)
    return torch.exp(-torch.arange(horizon, dtype=torch.float64) * (dt / tau)).to(torch.float32)


def trace_at(values: torch.Tensor, stamps: torch.Tensor, step: int, table: torch.Tensor) -> torch.Tensor:
    """Traces that jumped to ``values`` at ``stamps``, as they are at ``step``."""
    lag = step - stamps
    inside = lag < table.numel()
    return torch.where(inside, values * table[torch.where(inside, lag, 0)], torch.zeros_like(values))


def bounded(w: torch.Tensor, change: torch.Tensor, soft: bool, c: Constants) -> torch.Tensor:
    """``w`` after ``change``, within [w_min, w_max] (see the module's docstring)."""
    if soft:
        room = torch.where(change > 0, c.w_max - w, w - c.w_min)
        change = change * (room * c.inv_span)
    return torch.minimum(torch.maximum(w + change, c.w_min), c.w_max)


def jumped(now: torch.Tensor, amount: torch.Tensor, nearest: bool) -> torch.Tensor:
    """A trace's value after its jump: ``now`` plus ``amount``, or ``amount`` alone (nearest)."""
    return amount.expand_as(now).clone() if nearest else now + amount


@dataclass
class PlasticProjection:
    """A projection whose weights change (see the module's docstring). ``projection.weight`` is
    the weight per synapse (float32, rows by source); ``by_post`` the synapses in order of their
    target (then source), ``by_post_offsets`` where each target's start, ``pre_by_post`` the
    source of each in that order (read in order when a target spikes; only its weights are
    scattered). Weights, traces and the history of spikes not yet at their event
    change in place."""

    projection: Projection
    p: STDPParameters
    constants: Constants
    by_post: torch.Tensor  # int32 (synapses,)
    by_post_offsets: torch.Tensor  # int64 (n_post + 1,)
    pre_by_post: torch.Tensor  # int32 (synapses,)
    x_pre: torch.Tensor  # float32 (n_pre,): each trace just after its last jump
    pre_stamp: torch.Tensor  # int64 (n_pre,): the step of that jump
    x_post: torch.Tensor  # float32 (n_post,): the postsynaptic traces now
    delay: int
    waiting: list[torch.Tensor]  # the source's spikes (n_pre,) of the last delay - 1 steps, oldest first
    backend: str | None = None  # "triton": the Triton kernels wherever the tensors are (CUDA uses them anyway)

    @classmethod
    def of(cls, projection: Projection, p: STDPParameters, dt: float) -> "PlasticProjection":
        synapses = projection.synapses
        weight = projection.weight.expand(synapses) if projection.weight.dim() == 0 else projection.weight
        delays = projection.delay.reshape(-1)
        delay = int(delays[0]) if delays.numel() else 1
        if bool((delays != delay).any()) or delay < 1:
            raise ValueError("a plastic projection has one delay, of at least one step")
        shared = Projection(
            projection.n_pre, projection.n_post, projection.offsets, projection.post,
            weight.to(torch.float32).contiguous().clone(), torch.tensor(delay, dtype=torch.int32),
        )  # fmt: skip
        post = projection.post.to(torch.int64)
        by_post = torch.argsort(post, stable=True).to(torch.int32)  # within a target, by source (rows are by source)
        offsets = torch.zeros(projection.n_post + 1, dtype=torch.int64)
        offsets[1:] = torch.cumsum(torch.bincount(post, minlength=projection.n_post), 0)
        n_pre, n_post = projection.n_pre, projection.n_post
        return cls(
            shared, p, Constants.of(p, dt), by_post, offsets, projection.pre[by_post].to(torch.int32),
            torch.zeros(n_pre), torch.full((n_pre,), NEVER), torch.zeros(n_post), delay,
            [torch.zeros(n_pre, dtype=torch.bool) for _ in range(delay - 1)],
        )  # fmt: skip

    @property
    def weight(self) -> torch.Tensor:
        return self.projection.weight

    ARRAYS = ("by_post", "by_post_offsets", "pre_by_post", "x_pre", "pre_stamp", "x_post")

    def bytes(self) -> int:
        """Memory of the synapses, weights, traces and spike history (4 x 4 bytes a synapse)."""
        tensors = (*(getattr(self, name) for name in self.ARRAYS), *self.constants, *self.waiting)
        return self.projection.bytes() + sum(t.numel() * t.element_size() for t in tensors)

    def on(self, device: torch.device) -> "PlasticProjection":
        """This projection with its arrays on ``device`` (itself where they are already)."""
        if self.x_pre.device == device:
            return self
        return dataclasses.replace(
            self,
            projection=self.projection.on(device),
            constants=Constants(*(value.to(device) for value in self.constants)),
            **{name: getattr(self, name).to(device) for name in self.ARRAYS},
            waiting=[spikes.to(device) for spikes in self.waiting],
        )

    def step(self, step: int, emitted: torch.Tensor, post_spikes: torch.Tensor, deliver: torch.Tensor) -> None:
        """Step ``step``: ``emitted`` (n_pre,) the source's spikes of this step, ``post_spikes``
        (n_post,) the target's; adds the weights delivered by this step's presynaptic events to
        ``deliver`` (the target's input of the next step, (n_post,))."""
        self.waiting.append(emitted.reshape(-1).bool())
        events = self.waiting.pop(0)
        c, nearest = self.constants, self.p.pairing == "nearest"
        kernels = self.backend == "triton" or self.weight.is_cuda
        self.x_post.mul_(c.decay_post)
        sources = events.nonzero().reshape(-1)
        if sources.numel():
            self._deliver_and_depress(sources, deliver, kernels)
            now = trace_at(self.x_pre[sources], self.pre_stamp[sources], step, c.decay_pre)
            self.x_pre[sources], self.pre_stamp[sources] = jumped(now, c.a_pre, nearest), step
        fired = post_spikes.reshape(-1).nonzero().reshape(-1)
        if fired.numel():
            self.x_post[fired] = jumped(self.x_post[fired], c.a_post, nearest)
            self._potentiate(step, fired, kernels)

    def _deliver_and_depress(self, sources: torch.Tensor, deliver: torch.Tensor, kernels: bool) -> None:
        """The event sources' synapses deliver their weights, then are depressed by their targets'
        traces: in PyTorch, or by the Triton kernel (worker.engine.network.triton_kernels), each
        target's sum taken by one program in the same order."""
        c, soft, w, projection = self.constants, self.p.bounds == "soft", self.weight, self.projection
        if kernels:
            from worker.engine.network import triton_kernels

            triton_kernels.stdp_presynaptic(
                sources, projection.offsets, projection.post, w, self.x_post, deliver, _bounds(c), soft
            )
            return
        synapses = rows(projection.offsets, sources)
        targets = projection.post[synapses].to(torch.int64)
        deliver.index_add_(0, targets, w[synapses])
        w[synapses] = bounded(w[synapses], self.x_post[targets], soft, c)

    def _potentiate(self, step: int, fired: torch.Tensor, kernels: bool) -> None:
        """Every synapse into the targets that spiked potentiated by its source's trace: in
        PyTorch, or by the Triton kernel (a program per target)."""
        c, soft, w = self.constants, self.p.bounds == "soft", self.weight
        if kernels:
            from worker.engine.network import triton_kernels

            triton_kernels.stdp_postsynaptic(
                fired, self.by_post_offsets, self.by_post, self.pre_by_post, w, self.x_pre, self.pre_stamp, c.decay_pre, step,
                _bounds(c), soft,
            )  # fmt: skip
            return
        positions = rows(self.by_post_offsets, fired)
        synapses = self.by_post[positions]
        sources = self.pre_by_post[positions].to(torch.int64)
        w[synapses] = bounded(w[synapses], trace_at(self.x_pre[sources], self.pre_stamp[sources], step, c.decay_pre), soft, c)


def _bounds(c: Constants) -> tuple[float, float, float]:
    """The bounds as the Triton kernels take them: w_min, w_max, 1 / (w_max - w_min)."""
    return float(c.w_min), float(c.w_max), float(c.inv_span)


def rows(offsets: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """The positions of the rows ``chosen`` (ascending) of compressed rows: their concatenation."""
    starts, stops = offsets[chosen], offsets[chosen + 1]
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.int64, device=offsets.device)
    first = torch.repeat_interleave(starts - (torch.cumsum(lengths, 0) - lengths), lengths)
    return first + torch.arange(total, device=offsets.device)


class STDPState(NamedTuple):
    """The traces of ``stdp_step_reference``: the presynaptic ones (n_pre,) just after their last
    jumps and the steps of those jumps, the postsynaptic ones (n_post,) as they are."""

    x_pre: torch.Tensor
    pre_stamp: torch.Tensor
    x_post: torch.Tensor

    @classmethod
    def start(cls, n_pre: int, n_post: int) -> "STDPState":
        return cls(torch.zeros(n_pre), torch.full((n_pre,), NEVER), torch.zeros(n_post))


def stdp_step_reference(
    step: int,
    events: torch.Tensor,
    post_spikes: torch.Tensor,
    w: torch.Tensor,
    connected: torch.Tensor,
    state: STDPState,
    p: STDPParameters,
    dt: float,
) -> tuple[torch.Tensor, torch.Tensor, STDPState]:
    """The obvious step over a dense weight matrix ``w`` (n_pre, n_post) whose synapses are where
    ``connected``: ``events`` the presynaptic events of this step (n_pre,), ``post_spikes`` the
    target's spikes. Returns what the events deliver to the target (n_post,), the new weights
    and traces (see the module's docstring for the order)."""
    nearest, soft = p.pairing == "nearest", p.bounds == "soft"
    c = Constants.of(p, dt)
    x_pre, pre_stamp = state.x_pre.clone(), state.pre_stamp.clone()
    x_post = state.x_post * c.decay_post
    w = w.clone()
    delivered = torch.zeros(w.shape[1], dtype=w.dtype)
    for i in range(w.shape[0]):
        if not events[i]:
            continue
        delivered += torch.where(connected[i], w[i], 0.0)
        w[i] = torch.where(connected[i], bounded(w[i], x_post, soft, c), w[i])
        now = trace_at(x_pre[i : i + 1], pre_stamp[i : i + 1], step, c.decay_pre)
        x_pre[i], pre_stamp[i] = (c.a_pre if nearest else now[0] + c.a_pre), step
    pre_trace = trace_at(x_pre, pre_stamp, step, c.decay_pre)
    for j in range(w.shape[1]):
        if not post_spikes[j]:
            continue
        x_post[j] = c.a_post if nearest else x_post[j] + c.a_post
        w[:, j] = torch.where(connected[:, j], bounded(w[:, j], pre_trace, soft, c), w[:, j])
    return delivered, w, STDPState(x_pre, pre_stamp, x_post)
