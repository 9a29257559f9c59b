"""Sparse projections between populations, with synaptic delays: the building block of networks
that are graphs (Brunel's balanced network: 10,000 neurons, a million synapses, 1.5 ms delays).

A ``Projection`` holds its synapses in compressed rows by presynaptic neuron, each row sorted by
target: the targets of neuron j are ``post[offsets[j]:offsets[j+1]]``. Weights and delays are
arrays per synapse, or one shared value (a Brunel projection with one weight stores no weight
array: 4 bytes per synapse for the target, 8 per presynaptic neuron for the offsets).

A spike of neuron j at step t reaches target ``post[s]`` at step ``t + delay[s]`` (delays in
steps; 0 is the same step), as ``weight[s]`` added to that step's input. Future inputs wait in a
``DelayRing`` of at least ``max_delay + steps`` slots for ``steps`` steps handed over at a time.
``project`` adds the spikes of one step or of several consecutive steps to the ring (the C kernel
in ``events/projection_kernels.c``, or ``project_reference``, a dense product per delay that the
tests compare it with); ``DelayRing.take`` hands over the input of a step, ``take_steps`` of
several.

Connectivity is drawn on the CPU from a ``torch.Generator``, so a seed gives the same synapses
on every device: fixed in-degree, fixed out-degree, pairwise Bernoulli, one-to-one, all-to-all.
"""

import ctypes
import functools
import logging
import os
import pathlib
from dataclasses import dataclass

import torch

from worker.engine.fused.cpu import build

log = logging.getLogger(__name__)
SOURCE = pathlib.Path(__file__).with_name("events") / "projection_kernels.c"
DRAW_ROWS = 1024  # target neurons drawn at a time: bounds the memory of a draw without replacement


@dataclass(frozen=True)
class Projection:
    n_pre: int
    n_post: int
    offsets: torch.Tensor  # int64 (n_pre + 1,)
    post: torch.Tensor  # int32 (synapses,), each row ascending
    weight: torch.Tensor  # float32 (synapses,), or 0-dim: one weight for all
    delay: torch.Tensor  # int32 (synapses,), or 0-dim: one delay for all; in steps, >= 1

    @property
    def synapses(self) -> int:
        return int(self.post.numel())

    @property
    def max_delay(self) -> int:
        return int(self.delay.max()) if self.delay.numel() else 1

    @functools.cached_property
    def row_lengths(self) -> torch.Tensor:
        """Synapses per presynaptic neuron (int64 (n_pre,))."""
        return self.offsets.diff()

    @property
    def pre(self) -> torch.Tensor:
        """The presynaptic neuron of every synapse (int64), expanded from the offsets."""
        return torch.repeat_interleave(torch.arange(self.n_pre), self.row_lengths)

    def bytes(self) -> int:
        """Memory of the synapses: targets, offsets, and weights and delays where not shared."""
        return sum(t.numel() * t.element_size() for t in (self.offsets, self.post, self.weight, self.delay))


def from_pairs(
    pre: torch.Tensor, post: torch.Tensor, n_pre: int, n_post: int, weight: torch.Tensor | float, delay: torch.Tensor | int
) -> Projection:
    """A projection from synapse lists (``pre[s] -> post[s]``), sorted into rows by (pre, post);
    ``weight`` and ``delay`` per synapse (in the same order) or shared."""
    pre, post = pre.to(torch.int64), post.to(torch.int64)
    if pre.numel() and (pre.min() < 0 or pre.max() >= n_pre or post.min() < 0 or post.max() >= n_post):
        raise ValueError("a synapse names a neuron outside its population")
    order = torch.argsort(pre * n_post + post, stable=True)
    weight_t = torch.as_tensor(weight, dtype=torch.float32)
    delay_t = torch.as_tensor(delay, dtype=torch.int32)
    if weight_t.dim():
        weight_t = weight_t[order].contiguous()
    if delay_t.dim():
        delay_t = delay_t[order].contiguous()
    if delay_t.numel() and int(delay_t.min()) < 0:
        raise ValueError("delays are not negative")
    offsets = torch.zeros(n_pre + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.bincount(pre, minlength=n_pre), 0)
    return Projection(n_pre, n_post, offsets, post[order].to(torch.int32).contiguous(), weight_t, delay_t)


def _without_replacement(
    rows: int, choices: int, k: int, generator: torch.Generator, excluded: torch.Tensor | None
) -> torch.Tensor:
    """``k`` distinct indices in ``range(choices)`` per row (rows, k); ``excluded[r]`` never drawn for row r."""
    keys = torch.rand(rows, choices, generator=generator)
    if excluded is not None:
        keys[torch.arange(rows), excluded] = 2.0  # above every key: never among the k smallest
    return torch.topk(keys, k, dim=1, largest=False, sorted=False).indices


def _draw_degree(
    n_from: int, n_to: int, k: int, generator: torch.Generator, autapses: bool, multapses: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every neuron of ``n_to``, ``k`` partners among ``n_from``: (partner, neuron) lists."""
    available = n_from - (0 if autapses else 1)
    if k > available and not multapses:
        raise ValueError(f"{k} distinct partners asked of {available}")
    partners = []
    for start in range(0, n_to, DRAW_ROWS):
        rows = min(DRAW_ROWS, n_to - start)
        own = None if autapses else torch.arange(start, start + rows)
        if multapses:
            drawn = torch.randint(0, available, (rows, k), generator=generator)
            if own is not None:
                drawn += (drawn >= own[:, None]).to(drawn.dtype)  # skip the neuron itself
        else:
            drawn = _without_replacement(rows, n_from, k, generator, own)
        partners.append(drawn)
    chosen = torch.cat(partners) if partners else torch.zeros((0, k), dtype=torch.int64)
    return chosen.reshape(-1), torch.arange(n_to).repeat_interleave(k)


def fixed_in_degree(
    n_pre: int, n_post: int, k: int, generator: torch.Generator, *, weight: float = 1.0, delay: int = 1,
    autapses: bool = True, multapses: bool = False,
) -> Projection:  # fmt: skip
    """Every target gets exactly ``k`` inputs drawn from the presynaptic population. Without
    autapses (a population onto itself), neuron i never draws itself."""
    pre, post = _draw_degree(n_pre, n_post, k, generator, autapses, multapses)
    return from_pairs(pre, post, n_pre, n_post, weight, delay)


def fixed_out_degree(
    n_pre: int, n_post: int, k: int, generator: torch.Generator, *, weight: float = 1.0, delay: int = 1,
    autapses: bool = True, multapses: bool = False,
) -> Projection:  # fmt: skip
    """Every presynaptic neuron projects to exactly ``k`` targets."""
    post, pre = _draw_degree(n_post, n_pre, k, generator, autapses, multapses)
    return from_pairs(pre, post, n_pre, n_post, weight, delay)


def pairwise_bernoulli(
    n_pre: int, n_post: int, p: float, generator: torch.Generator, *, weight: float = 1.0, delay: int = 1,
    autapses: bool = True,
) -> Projection:  # fmt: skip
    """Each (pre, post) pair is connected with probability ``p``, independently."""
    pres, posts = [], []
    for start in range(0, n_pre, DRAW_ROWS):
        rows = min(DRAW_ROWS, n_pre - start)
        connected = torch.rand(rows, n_post, generator=generator) < p
        if not autapses:
            index = torch.arange(rows)
            inside = start + index < n_post
            connected[index[inside], (start + index)[inside]] = False
        pre, post = connected.nonzero(as_tuple=True)
        pres.append(pre + start)
        posts.append(post)
    return from_pairs(torch.cat(pres), torch.cat(posts), n_pre, n_post, weight, delay)


def one_to_one(n: int, *, weight: float = 1.0, delay: int = 1) -> Projection:
    neurons = torch.arange(n)
    return from_pairs(neurons, neurons, n, n, weight, delay)


def all_to_all(n_pre: int, n_post: int, *, weight: torch.Tensor | float = 1.0, delay: int = 1) -> Projection:
    """Every pair; ``weight`` may be a dense (n_pre, n_post) matrix."""
    pre = torch.arange(n_pre).repeat_interleave(n_post)
    post = torch.arange(n_post).repeat(n_pre)
    weights = torch.as_tensor(weight, dtype=torch.float32)
    return from_pairs(pre, post, n_pre, n_post, weights.reshape(-1) if weights.dim() else weights, delay)


class DelayRing:
    """Inputs of the coming steps, per batch row and target: ``slots`` >= the longest delay plus
    the steps taken at a time."""

    def __init__(self, slots: int, rows: int, n_post: int, device: torch.device | str = "cpu") -> None:
        self.slots = slots
        self.buffer = torch.zeros((slots, rows, n_post), dtype=torch.float32, device=device)

    def take(self, step: int) -> torch.Tensor:
        """The input that arrives at ``step`` (rows, n_post); its slot is emptied for reuse."""
        return self.take_steps(step, 1)[0]

    def _slots(self, step: int, steps: int) -> torch.Tensor | slice:
        first = step % self.slots
        if first + steps <= self.slots:
            return slice(first, first + steps)
        return (torch.arange(steps, device=self.buffer.device) + first) % self.slots

    def take_steps(self, step: int, steps: int) -> torch.Tensor:
        """The input of steps ``step .. step + steps - 1`` (steps, rows, n_post); their slots are emptied."""
        slots = self._slots(step, steps)
        taken = self.buffer[slots].clone()
        self.buffer[slots] = 0.0
        return taken

    def add(self, step: int, values: torch.Tensor) -> None:
        """Adds ``values`` (steps, rows, n_post) to the input of steps ``step ..``."""
        slots = self._slots(step, values.shape[0])
        if isinstance(slots, slice):
            self.buffer[slots] += values
        else:
            self.buffer.index_add_(0, slots, values)


def project_reference(spikes: torch.Tensor, projection: Projection, ring: DelayRing, step: int) -> None:
    """The obvious version: for each step and delay, the dense weight matrix of its synapses times
    the spikes. ``spikes`` is (rows, n_pre) for one step or (steps, rows, n_pre)."""
    if spikes.dim() == 3:
        for offset, spikes_t in enumerate(spikes):
            project_reference(spikes_t, projection, ring, step + offset)
        return
    pre = projection.pre
    weights = projection.weight.expand(projection.synapses) if projection.weight.dim() == 0 else projection.weight
    delays = projection.delay.expand(projection.synapses) if projection.delay.dim() == 0 else projection.delay
    for d in torch.unique(delays).tolist():
        dense = torch.zeros(projection.n_pre, projection.n_post, dtype=torch.float64)
        chosen = delays == d
        dense.index_put_((pre[chosen], projection.post[chosen].to(torch.int64)), weights[chosen].double(), accumulate=True)
        ring.buffer[(step + d) % ring.slots] += (spikes.double() @ dense).float()


@functools.cache
def _library() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(build(source=SOURCE)))
    except (RuntimeError, OSError) as error:
        log.warning("projection kernel unavailable, projections run the reference: %s", error)
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.project_spikes.argtypes = [
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        ptr,
        ptr,
        ptr,
        ptr,
        ctypes.c_float,
        ptr,
        i64,
        ptr,
        i64,
        ctypes.c_int,
    ]
    lib.project_spikes.restype = None
    return lib


def project(spikes: torch.Tensor, projection: Projection, ring: DelayRing, step: int, threads: int | None = None) -> None:
    """Adds the spikes of ``step`` ((rows, n_pre): bool, or small counts), or of the steps from
    ``step`` on ((steps, rows, n_pre)), to the ring."""
    lib = _library()
    if lib is None or ring.buffer.device.type != "cpu":
        project_reference(spikes.float(), projection, ring, step)
        return
    counts = spikes.to(torch.uint8).contiguous()
    counts_3d = counts if counts.dim() == 3 else counts.unsqueeze(0)
    per_neuron = counts_3d.reshape(-1, projection.n_pre).sum(0, dtype=torch.int64)
    synapses = int((per_neuron * projection.row_lengths).sum())
    if synapses == 0:
        return
    shared_w, shared_d = projection.weight.dim() == 0, projection.delay.dim() == 0
    lib.project_spikes(
        counts_3d.shape[0], counts_3d.shape[1], projection.n_pre, projection.n_post, ring.slots, step, counts.data_ptr(),
        projection.offsets.data_ptr(), projection.post.data_ptr(),
        None if shared_w else projection.weight.data_ptr(), float(projection.weight) if shared_w else 0.0,
        None if shared_d else projection.delay.data_ptr(), int(projection.delay) if shared_d else 0,
        ring.buffer.data_ptr(), synapses, threads or torch.get_num_threads() or os.cpu_count() or 1,
    )  # fmt: skip
