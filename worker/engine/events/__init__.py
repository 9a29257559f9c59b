"""Event-driven synaptic propagation and counter-based Poisson input.

When a synaptic layer's input is spikes, only the active inputs contribute: each adds its weight
row (``linear``) or scatters its kernel (``conv2d``, ``avgpool2d``) into the output, in a fixed
order, so a row's result depends on that row's spikes alone and never on how steps are chunked.
Inputs are counts as uint8 or bool tensors; weights come input-major (``linear``: (n_in, n_out);
``conv2d``: (c_in, kh, kw, c_out)), so an event reads contiguous memory.

``poisson_spikes`` draws Poisson input from Philox4x32-10 keyed by the seed and counted by
(neuron, batch entry, step): any range of steps in one call, the same spikes whatever the
chunking, and the same spikes on the CPU and on CUDA.

Backends: ``cpu`` (C with OpenMP, ``cpu.py``) and ``triton`` (CUDA, ``triton_kernels.py``);
``reference.py`` holds the slow versions the tests compare them with.
"""

import math
from collections.abc import Callable
from types import ModuleType

import numpy as np
import torch

from worker.engine.events import reference
from worker.engine_options import ENGINE

__all__ = [
    "available", "avgpool2d_events", "conv2d_events", "linear_events", "poisson_counts", "poisson_spikes", "poisson_thresholds",
    "record_spikes", "spike_count",
]  # fmt: skip

SPIKE_DTYPES = (torch.bool, torch.uint8)


def _backend(name: str | None, device: torch.device) -> ModuleType | None:
    if name == "cpu" or (name is None and device.type == "cpu"):
        from worker.engine.events import cpu

        return cpu if cpu.library() is not None else None
    if name == "triton" or (name is None and device.type == "cuda"):
        try:
            from worker.engine.events import triton_kernels
        except ImportError:
            return None
        return triton_kernels
    if name is not None:
        raise ValueError(f"unknown event backend {name!r}")
    return None


def available(device: torch.device) -> bool:
    """Whether event-driven synapses can run on ``device`` (the engine's ``events`` option off turns them off)."""
    return ENGINE.events and _backend(None, device) is not None


def _kernels(backend: str | None, device: torch.device) -> ModuleType:
    kernels = _backend(backend, device)
    if kernels is None:
        raise RuntimeError(f"no event kernels for {device}")
    return kernels


def _counts(x: torch.Tensor) -> torch.Tensor:
    if x.dtype not in SPIKE_DTYPES:
        raise TypeError(f"event input must be bool or uint8 counts, got {x.dtype}")
    return x.contiguous()


def linear_events(
    x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None, events: int | None = None, backend: str | None = None
) -> torch.Tensor:
    """``x`` (rows, n_in) spike counts through a linear layer whose weight is ``weight_t``
    (n_in, n_out): (rows, n_out) float32. ``events``: the sum of ``x`` when the caller knows it."""
    x = _counts(x)
    out = torch.empty((x.shape[0], weight_t.shape[1]), dtype=torch.float32, device=x.device)
    _kernels(backend, x.device).linear(x, weight_t, bias, events, out)
    return out


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def conv2d_events(
    x: torch.Tensor,
    weight_t: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    events: int | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """``x`` (rows, c_in, h, w) spike counts through a convolution whose weight is ``weight_t``
    (c_in, kh, kw, c_out) (groups 1, dilation 1): (rows, c_out, ho, wo) float32."""
    x = _counts(x)
    rows, _, h, w = x.shape
    _, kh, kw, c_out = weight_t.shape
    ho, wo = conv_output_size(h, kh, stride[0], padding[0]), conv_output_size(w, kw, stride[1], padding[1])
    out = torch.empty((rows, c_out, ho, wo), dtype=torch.float32, device=x.device)
    _kernels(backend, x.device).conv2d(x, weight_t, bias, stride, padding, events, out)
    return out


def avgpool2d_events(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], backend: str | None = None
) -> torch.Tensor:
    """``x`` (rows, c, h, w) spike counts through ``AvgPool2d(kernel, stride, padding)``."""
    x = _counts(x)
    rows, c, h, w = x.shape
    ho, wo = (conv_output_size(size, k, s, p) for size, k, s, p in zip((h, w), kernel, stride, padding, strict=True))
    out = torch.empty((rows, c, ho, wo), dtype=torch.float32, device=x.device)
    _kernels(backend, x.device).avgpool2d(x, kernel, stride, padding, out)
    return out


def poisson_thresholds(probability: np.ndarray) -> np.ndarray:
    """Per-neuron spike probabilities per step -> the integer thresholds the draws are compared
    with: round(p * 2^32), so a probability is kept to within 2^-33 (float64 on the host, the same
    integers for every device)."""
    scaled = np.rint(np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0) * 2.0**32)
    return scaled.astype(np.int64).reshape(-1)


def poisson_spikes(
    threshold: torch.Tensor, t0: int, steps: int, batch: int, seed: int, backend: str | None = None
) -> torch.Tensor:
    """(steps, batch, n) bool Poisson spikes for steps ``t0 .. t0 + steps - 1`` from per-neuron
    ``threshold`` (int64, from ``poisson_thresholds``, on the target device)."""
    if not 0 <= seed < 2**64 or t0 < 0 or t0 + steps > 2**32:
        raise ValueError("seed must be in [0, 2^64) and steps in [0, 2^32)")
    n = threshold.shape[0]
    kernels = kernels_for(threshold.device, backend)
    if kernels is None:
        return reference.poisson_spikes(threshold, t0, steps, batch, seed)
    out = torch.empty((steps, batch, n), dtype=torch.bool, device=threshold.device)
    if math.prod(out.shape):
        kernels.poisson(threshold.contiguous(), t0, seed, out)
    return out


def poisson_counts(
    table: torch.Tensor, row: torch.Tensor, t0: int, steps: int, batch: int, seed: int, backend: str | None = None
) -> torch.Tensor:
    """(steps, batch, n) uint8 spike counts of several Poisson trains per feature, from the count
    thresholds ``table`` (rows, width) int64 and each feature's ``row`` (n,) int32 (see
    ``worker.simulation.binomial``), both on the target device; the same draws as ``poisson_spikes``."""
    if not 0 <= seed < 2**64 or t0 < 0 or t0 + steps > 2**32:
        raise ValueError("seed must be in [0, 2^64) and steps in [0, 2^32)")
    kernels = kernels_for(table.device, backend)
    if kernels is None:
        return reference.poisson_counts(table, row, t0, steps, batch, seed)
    out = torch.empty((steps, batch, row.shape[0]), dtype=torch.uint8, device=table.device)
    if math.prod(out.shape):
        kernels.poisson_counts(table.contiguous(), row.contiguous(), t0, seed, out)
    return out


def kernels_for(device: torch.device, backend: str | None = None) -> ModuleType | None:
    """The event kernels for ``device`` (or the ``backend`` named: "cpu", "triton"), None where
    there are none or the engine's ``events`` option is off."""
    return _backend(backend, device) if backend is not None or available(device) else None


def _cpu_kernels(x: torch.Tensor) -> ModuleType | None:
    """The C kernels where ``x`` is on the CPU and they may run; elsewhere PyTorch's operators."""
    return _backend(None, x.device) if x.device.type == "cpu" and ENGINE.events else None


def spike_count(x: torch.Tensor) -> int:
    """The number of events in ``x`` (bool or uint8 counts)."""
    kernels = _cpu_kernels(x)
    if kernels is not None and x.is_contiguous():
        return kernels.spike_count(x)
    return int(x.sum(dtype=torch.int64))


def record_spikes(
    z: torch.Tensor, t0: int, counts: torch.Tensor, take: Callable[[int], None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The events of bool spikes ``z`` (steps, batch, n) as host arrays (times from ``t0``, batch
    entries, senders) in (step, batch, neuron) order, with each neuron's spikes added to
    ``counts`` (batch, n) int64 on ``z``'s device. ``take(total)`` is called before the events
    are listed (it may raise to refuse them). Extracted where the spikes are; one copy to the
    host."""
    z = z.contiguous()
    kernels = _cpu_kernels(z)
    if kernels is not None:
        starts = kernels.row_starts(z)
        take(int(starts[-1]))
        times, batches, senders = kernels.spike_events(z, t0, starts, counts)
        return times.numpy(), batches.numpy(), senders.numpy()
    chunk_counts = z.sum(0, dtype=torch.int64)
    take(int(chunk_counts.sum()))
    events = z.nonzero()
    counts += chunk_counts
    events[:, 0] += t0
    host = events.cpu().numpy()
    return np.ascontiguousarray(host[:, 0]), np.ascontiguousarray(host[:, 1]), np.ascontiguousarray(host[:, 2])
