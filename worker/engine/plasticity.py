"""Spike-timing-dependent plasticity (STDP) on a sparse projection, event-driven.

A plastic projection keeps a weight per synapse (float32), a presynaptic trace per source neuron
and a postsynaptic trace per target neuron (pair-based STDP with exponential traces: Song, Miller
& Abbott 2000; Brian2's and NEST's ``stdp_synapse``). A source's spike at step n reaches the
target at step n + d (``d`` >= 1, one delay for the whole edge); its plasticity event is at step
e = n + d - 1, the last step before the target feels it, which makes a graph's delay of one step
Brian2's delay of zero, event for event. Within the step t of an edge's events, after every node
has run step t:

    1. both traces decay by one step: x_pre *= exp(-dt / tau_pre), x_post *= exp(-dt / tau_post)
    2. presynaptic events (the source's spikes of step t - d + 1), source by source in index
       order: each synapse delivers its weight to the target's input of step t + 1, before it
       changes; x_pre[i] += a_pre ("all_to_all"; "nearest": x_pre[i] = a_pre); then each of its
       synapses w += x_post[target]
    3. postsynaptic events (the target's spikes of step t): x_post[j] += a_post ("nearest": = a_post);
       then every synapse into j: w += x_pre[source]

so a pre and a post spike of one step count as pre before post (potentiation), as in Brian2,
where on_pre runs before on_post. Every change is bounded: "hard" adds it and clips to
[w_min, w_max]; "soft" scales a rise by (w_max - w) / (w_max - w_min) and a fall by
(w - w_min) / (w_max - w_min) first. The work of a step is the traces' decay (neurons) plus the
synapses of its spikes: never synapses times steps.

``PlasticProjection.step`` is the event-driven form the graph runs (the C network kernel in
``worker.engine.network`` does the same operations in the same order); ``stdp_step_reference``
the obvious one over a dense weight matrix, which the tests compare it with.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from worker.engine.parameter_types import STDPParameters
from worker.engine.projections import Projection


class Constants(NamedTuple):
    """A rule's numbers as float32 scalars, so that every path (PyTorch here, C in the network
    kernel) computes with the same values: the traces' factors per step, their jumps, the bounds
    and 1 / (w_max - w_min) (0 where the bounds meet)."""

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
        values = (
            math.exp(-dt / p.tau_pre), math.exp(-dt / p.tau_post), p.a_pre, p.a_post, p.w_min, p.w_max,
            1.0 / span if span > 0 else 0.0,
        )  # fmt: skip
        return cls(*(torch.tensor(value, dtype=torch.float32) for value in values))


def bounded(w: torch.Tensor, change: torch.Tensor, soft: bool, c: Constants) -> torch.Tensor:
    """``w`` after ``change``, within [w_min, w_max] (see the module's docstring)."""
    if soft:
        room = torch.where(change > 0, c.w_max - w, w - c.w_min)
        change = change * (room * c.inv_span)
    return torch.minimum(torch.maximum(w + change, c.w_min), c.w_max)


def _raised(trace: torch.Tensor, amount: torch.Tensor, nearest: bool) -> torch.Tensor:
    return amount.expand_as(trace).clone() if nearest else trace + amount


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
    x_pre: torch.Tensor  # float32 (n_pre,)
    x_post: torch.Tensor  # float32 (n_post,)
    delay: int
    waiting: list[torch.Tensor]  # the source's spikes (n_pre,) of the last delay - 1 steps, oldest first

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
        return cls(
            shared, p, Constants.of(p, dt), by_post, offsets, projection.pre[by_post].to(torch.int32),
            torch.zeros(projection.n_pre), torch.zeros(projection.n_post), delay,
            [torch.zeros(projection.n_pre, dtype=torch.bool) for _ in range(delay - 1)],
        )  # fmt: skip

    @property
    def weight(self) -> torch.Tensor:
        return self.projection.weight

    def on(self, device: torch.device) -> "PlasticProjection":
        """This projection with its arrays on ``device`` (itself where they are already)."""
        if self.x_pre.device == device:
            return self
        return dataclasses.replace(
            self,
            projection=self.projection.on(device),
            constants=Constants(*(value.to(device) for value in self.constants)),
            **{name: getattr(self, name).to(device) for name in ("by_post", "by_post_offsets", "pre_by_post", "x_pre", "x_post")},
            waiting=[spikes.to(device) for spikes in self.waiting],
        )

    def step(self, emitted: torch.Tensor, post_spikes: torch.Tensor, deliver: torch.Tensor) -> None:
        """One step t: ``emitted`` (n_pre,) the source's spikes of step t, ``post_spikes``
        (n_post,) the target's; adds the weights delivered by this step's presynaptic events to
        ``deliver`` (the target's input of step t + 1, (n_post,))."""
        self.waiting.append(emitted.reshape(-1).bool())
        events = self.waiting.pop(0)
        c, w = self.constants, self.weight
        nearest, soft = self.p.pairing == "nearest", self.p.bounds == "soft"
        self.x_pre.mul_(c.decay_pre)
        self.x_post.mul_(c.decay_post)
        sources = events.nonzero().reshape(-1)
        if sources.numel():
            synapses = rows(self.projection.offsets, sources)
            targets = self.projection.post[synapses].to(torch.int64)
            deliver.index_add_(0, targets, w[synapses])
            self.x_pre[sources] = _raised(self.x_pre[sources], c.a_pre, nearest)
            w[synapses] = bounded(w[synapses], self.x_post[targets], soft, c)
        fired = post_spikes.reshape(-1).nonzero().reshape(-1)
        if fired.numel():
            self.x_post[fired] = _raised(self.x_post[fired], c.a_post, nearest)
            positions = rows(self.by_post_offsets, fired)
            synapses = self.by_post[positions]
            w[synapses] = bounded(w[synapses], self.x_pre[self.pre_by_post[positions]], soft, c)


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
    """The traces of ``stdp_step_reference``: presynaptic (n_pre,), postsynaptic (n_post,)."""

    x_pre: torch.Tensor
    x_post: torch.Tensor


def stdp_step_reference(
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
    x_pre = state.x_pre * c.decay_pre
    x_post = state.x_post * c.decay_post
    w = w.clone()
    delivered = torch.zeros(w.shape[1], dtype=w.dtype)
    for i in range(w.shape[0]):
        if not events[i]:
            continue
        delivered += torch.where(connected[i], w[i], 0.0)
        x_pre[i] = c.a_pre if nearest else x_pre[i] + c.a_pre
        w[i] = torch.where(connected[i], bounded(w[i], x_post, soft, c), w[i])
    for j in range(w.shape[1]):
        if not post_spikes[j]:
            continue
        x_post[j] = c.a_post if nearest else x_post[j] + c.a_post
        w[:, j] = torch.where(connected[:, j], bounded(w[:, j], x_pre, soft, c), w[:, j])
    return delivered, w, STDPState(x_pre, x_post)
