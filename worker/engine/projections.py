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
in ``projection_kernels.c``, or ``project_reference``, a dense product per delay that the
tests compare it with); ``DelayRing.take`` hands over the input of a step, ``take_steps`` of
several.

Connectivity is drawn on the CPU, so a seed gives the same synapses on every device: the fixed
in- and out-degree rules from counter-based draws of (seed, stream, neuron) in a C kernel
(``draw_partners``: k draws per neuron, any thread count), pairwise Bernoulli from a
``torch.Generator``; one-to-one and all-to-all need none.
"""

import ctypes
import functools
import logging
import math
import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from worker.engine import native
from worker.engine.events import kernels_for, spike_count
from worker.engine.events import reference as events_reference
from worker.engine.native import NativeLibrary

log = logging.getLogger(__name__)
SOURCE = pathlib.Path(__file__).with_name("projection_kernels.c")
BERNOULLI_BLOCK = 2**22  # gaps of a Bernoulli edge drawn at a time (32 MiB of float64)


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
        return torch.repeat_interleave(torch.arange(self.n_pre, device=self.offsets.device), self.row_lengths)

    def on(self, device: torch.device) -> "Projection":
        """The projection with its arrays on ``device`` (itself where they are already)."""
        if self.post.device == device:
            return self
        return Projection(self.n_pre, self.n_post, *(t.to(device) for t in (self.offsets, self.post, self.weight, self.delay)))

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


class _Draws:
    """One row's stream of 32-bit words, Philox block after block (the kernel's ``draws_t``)."""

    def __init__(self, seed: int, row: int, stream: int) -> None:
        self.seed, self.row, self.stream = seed, row, stream
        self.block = 0
        self.words: list[int] = []

    def word(self) -> int:
        if not self.words:
            counter = [torch.tensor(value, dtype=torch.int64) for value in (self.block, self.row, self.stream, 1)]
            self.words = [int(word) for word in reversed(events_reference.philox(counter, self.seed))]
            self.block += 1
        return self.words.pop()

    def bounded(self, limit: int) -> int:
        """Lemire's multiply-shift with rejection: uniform in ``range(limit)``."""
        product = self.word() * limit
        floor = (2**32 - limit) % limit
        while product % 2**32 < floor:
            product = self.word() * limit
        return product >> 32


def draw_partners_reference(
    rows: int, choices: int, k: int, seed: int, stream: int, exclude_own: bool, multapses: bool
) -> torch.Tensor:
    """The obvious version of ``draw_partners``, one Philox block at a time in Python: the same
    draws (counter (block, row, stream, 1) under the seed), the same bounded integers, Floyd's
    algorithm for distinct partners."""
    out = torch.zeros((rows, k), dtype=torch.int32)
    for r in range(rows):
        draws = _Draws(seed % 2**64, r, stream)
        skip = exclude_own and r < choices
        available = choices - skip
        chosen: list[int] = []
        if multapses:
            chosen = [draws.bounded(available) for _ in range(k)]
        else:
            for j in range(available - k, available):
                t = draws.bounded(j + 1)
                chosen.append(j if t in chosen else t)
        out[r] = torch.tensor([v + (skip and v >= r) for v in chosen], dtype=torch.int32)
    return out


def draw_partners(rows: int, choices: int, k: int, seed: int, stream: int, exclude_own: bool, multapses: bool) -> torch.Tensor:
    """(rows, k) int32: each row's ``k`` partners in ``range(choices)``, distinct unless
    ``multapses``, never the row's own index with ``exclude_own``; counter-based in (seed, stream,
    row), so the same on any machine and thread count (the C kernel, or the reference)."""
    available = choices - (1 if exclude_own and rows else 0)
    if k > available and not multapses:
        raise ValueError(f"{k} distinct partners asked of {available}")
    lib = _library()
    if lib is None:
        return draw_partners_reference(rows, choices, k, seed, stream, exclude_own, multapses)
    out = torch.empty((rows, k), dtype=torch.int32)
    threads = torch.get_num_threads() or os.cpu_count() or 1
    lib.draw_partners(rows, choices, k, seed % 2**64, stream, int(exclude_own), int(multapses), out.data_ptr(), threads)
    return out


def _rows_by_source(
    n_pre: int, n_post: int, pre: torch.Tensor, post: torch.Tensor, sort_rows: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(offsets, post) of compressed rows from int32 pairs: a stable counting sort by source."""
    lib = _library()
    if lib is None:
        projection = from_pairs(pre, post, n_pre, n_post, 1.0, 1)
        return projection.offsets, projection.post
    offsets = torch.empty(n_pre + 1, dtype=torch.int64)
    rows = torch.empty_like(post)
    lib.rows_by_source(n_pre, post.numel(), pre.data_ptr(), post.data_ptr(), int(sort_rows), offsets.data_ptr(), rows.data_ptr())
    return offsets, rows


def fixed_in_degree(
    n_pre: int, n_post: int, k: int, seed: int, stream: int = 0, *, weight: float = 1.0, delay: int = 1,
    autapses: bool = True, multapses: bool = False,
) -> Projection:  # fmt: skip
    """Every target gets exactly ``k`` inputs drawn from the presynaptic population. Without
    autapses (a population onto itself), neuron i never draws itself."""
    sources = draw_partners(n_post, n_pre, k, seed, stream, not autapses, multapses)
    targets = torch.arange(n_post, dtype=torch.int32).repeat_interleave(k)
    offsets, post = _rows_by_source(n_pre, n_post, sources.reshape(-1), targets, sort_rows=False)  # listed by target
    return Projection(n_pre, n_post, offsets, post, torch.tensor(weight), torch.tensor(delay, dtype=torch.int32))


def fixed_out_degree(
    n_pre: int, n_post: int, k: int, seed: int, stream: int = 0, *, weight: float = 1.0, delay: int = 1,
    autapses: bool = True, multapses: bool = False,
) -> Projection:  # fmt: skip
    """Every presynaptic neuron projects to exactly ``k`` targets."""
    targets = draw_partners(n_pre, n_post, k, seed, stream, not autapses, multapses)
    sources = torch.arange(n_pre, dtype=torch.int32).repeat_interleave(k)
    offsets, post = _rows_by_source(n_pre, n_post, sources, targets.reshape(-1), sort_rows=True)
    return Projection(n_pre, n_post, offsets, post, torch.tensor(weight), torch.tensor(delay, dtype=torch.int32))


def pairwise_bernoulli(
    n_pre: int, n_post: int, p: float, generator: torch.Generator, *, weight: float = 1.0, delay: int = 1,
    autapses: bool = True, should_stop: Callable[[], None] | None = None,
) -> Projection:  # fmt: skip
    """Each (pre, post) pair is connected with probability ``p``, independently.

    The pairs are walked in row-major order, and the gap from one connected pair to the next is
    drawn from the geometric distribution (``floor(log(1 - u) / log(1 - p))`` failures): the work
    is proportional to the synapses, not to the pairs (40,000 x 40,000 pairs at p = 1e-6 took
    13-40 s drawn pair by pair). The gaps are drawn in blocks sized by the pairs left, so a seed
    gives the same synapses on every machine; ``should_stop()``, called between blocks, may raise
    to abandon the build (a cancelled job)."""
    pairs = n_pre * n_post
    rows_per_pre = torch.zeros(n_pre, dtype=torch.int64)
    targets: list[torch.Tensor] = []  # int32, block after block: 4 bytes a synapse beside the block's own
    log_q = math.log1p(-p) if p < 1.0 else -math.inf
    start = 0  # the first pair not yet decided
    while start < pairs:
        if should_stop is not None:
            should_stop()
        expected = (pairs - start) * p
        block = int(min(BERNOULLI_BLOCK, max(1024, expected + 8 * math.sqrt(expected) + 64)))
        if p < 1.0:
            u = torch.rand(block, generator=generator, dtype=torch.float64)
            gaps = torch.clamp(torch.log1p(-u) / log_q, max=float(pairs)).floor().to(torch.int64)
            positions = start + torch.cumsum(gaps + 1, 0) - 1
        else:
            positions = torch.arange(start, min(pairs, start + block), dtype=torch.int64)
        start = int(positions[-1]) + 1
        positions = positions[positions < pairs]
        pre, post = positions // n_post, positions % n_post
        if not autapses:
            kept = pre != post
            pre, post = pre[kept], post[kept]
        rows_per_pre += torch.bincount(pre, minlength=n_pre)
        targets.append(post.to(torch.int32))
    offsets = torch.zeros(n_pre + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(rows_per_pre, 0)
    post_all = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.int32)
    shared = (torch.tensor(weight, dtype=torch.float32), torch.tensor(delay, dtype=torch.int32))
    return Projection(n_pre, n_post, offsets, post_all.contiguous(), *shared)


def pairwise_bernoulli_reference(n_pre: int, n_post: int, p: float, seed: int, *, autapses: bool = True) -> list[tuple[int, int]]:
    """The obvious version of ``pairwise_bernoulli``'s walk, one gap at a time in Python from
    the same blocks of uniform draws: the connected (pre, post) pairs, in row-major order."""
    generator = torch.Generator().manual_seed(seed)
    pairs, found, start = n_pre * n_post, [], 0
    if p >= 1.0:
        found = [divmod(position, n_post) for position in range(pairs)]
    while start < pairs and p < 1.0:
        expected = (pairs - start) * p
        block = int(min(BERNOULLI_BLOCK, max(1024, expected + 8 * math.sqrt(expected) + 64)))
        position = start - 1
        for u in torch.rand(block, generator=generator, dtype=torch.float64).tolist():
            position += 1 + min(math.floor(math.log1p(-u) / math.log1p(-p)), pairs)
            if position < pairs:
                found.append(divmod(position, n_post))
        start = position + 1
    return [(i, j) for i, j in found if autapses or i != j]


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
        dense = torch.zeros(projection.n_pre, projection.n_post, dtype=torch.float64, device=ring.buffer.device)
        chosen = delays == d
        dense.index_put_((pre[chosen], projection.post[chosen].to(torch.int64)), weights[chosen].double(), accumulate=True)
        ring.buffer[(step + d) % ring.slots] += (spikes.double() @ dense).float()


def _declare(lib: ctypes.CDLL) -> None:
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
    lib.draw_partners.argtypes = [i64, i64, i64, ctypes.c_uint64, i64, ctypes.c_int, ctypes.c_int, ptr, ctypes.c_int]
    lib.draw_partners.restype = None
    lib.rows_by_source.argtypes = [i64, i64, ptr, ptr, ctypes.c_int, ptr, ptr]
    lib.rows_by_source.restype = None


LIBRARY = NativeLibrary(SOURCE, _declare, "projections run the reference")


def _library() -> ctypes.CDLL | None:
    return native.load(LIBRARY)


def project(
    spikes: torch.Tensor,
    projection: Projection,
    ring: DelayRing,
    step: int,
    threads: int | None = None,
    backend: str | None = None,
) -> None:
    """Adds the spikes of ``step`` ((rows, n_pre): bool, or small counts), or of the steps from
    ``step`` on ((steps, rows, n_pre)), to the ring: the C kernel on the CPU, the Triton kernel on
    CUDA (``backend`` forces one, for tests), the reference where neither runs."""
    device = ring.buffer.device
    counts = spikes.to(torch.uint8).contiguous()
    counts_3d = counts if counts.dim() == 3 else counts.unsqueeze(0)
    on_gpu = backend == "triton" or (backend is None and device.type == "cuda")
    kernels = kernels_for(device, backend) if on_gpu else None
    lib = None if on_gpu else _library()
    if kernels is None and lib is None:
        project_reference(spikes.float(), projection, ring, step)
        return
    if kernels is not None:
        on = projection.on(device)
        kernels.project(counts_3d, on.offsets, on.post, on.weight, on.delay, ring.buffer, step)
        return
    assert lib is not None
    events = spike_count(counts_3d)
    if events == 0:
        return
    synapses = events * max(1, projection.synapses // max(1, projection.n_pre))  # about; it sizes the team
    shared_w, shared_d = projection.weight.dim() == 0, projection.delay.dim() == 0
    lib.project_spikes(
        counts_3d.shape[0], counts_3d.shape[1], projection.n_pre, projection.n_post, ring.slots, step, counts.data_ptr(),
        projection.offsets.data_ptr(), projection.post.data_ptr(),
        None if shared_w else projection.weight.data_ptr(), float(projection.weight) if shared_w else 0.0,
        None if shared_d else projection.delay.data_ptr(), int(projection.delay) if shared_d else 0,
        ring.buffer.data_ptr(), synapses, threads or torch.get_num_threads() or os.cpu_count() or 1,
    )  # fmt: skip
