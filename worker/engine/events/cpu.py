"""The CPU backend of the event kernels: ``event_kernels.c``, compiled on first use
(``worker.engine.native``) and called through ctypes."""

import ctypes
import logging
import pathlib

import torch

from worker.engine import native
from worker.engine.native import NativeLibrary

log = logging.getLogger(__name__)
SOURCE = pathlib.Path(__file__).with_name("event_kernels.c")


def _declare(lib: ctypes.CDLL) -> None:
    i64, ptr, c_int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    lib.linear_events.argtypes = [i64, i64, i64, i64, ptr, ptr, ptr, ptr, c_int]
    lib.conv2d_events.argtypes = [*[i64] * 14, ptr, ptr, ptr, ptr, c_int]
    lib.avgpool2d_events.argtypes = [*[i64] * 12, ptr, ptr, c_int]
    lib.poisson_spikes.argtypes = [i64, i64, i64, i64, ctypes.c_uint64, ptr, ptr, c_int]
    lib.poisson_counts.argtypes = [i64, i64, i64, i64, ctypes.c_uint64, ptr, i64, i64, ptr, ptr, c_int]
    lib.spike_count.argtypes = [ptr, i64, c_int]
    lib.spike_count.restype = i64
    lib.spike_rows.argtypes = [i64, i64, ptr, ptr, c_int]
    lib.spike_events.argtypes = [i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, c_int]
    for function in (
        lib.linear_events,
        lib.conv2d_events,
        lib.avgpool2d_events,
        lib.poisson_spikes,
        lib.poisson_counts,
        lib.spike_rows,
        lib.spike_events,
    ):
        function.restype = None


LIBRARY = NativeLibrary(SOURCE, _declare, "synaptic layers run dense")


def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None (logged once) when they cannot be built here."""
    return native.load(LIBRARY)


def _lib() -> ctypes.CDLL:
    lib = library()
    assert lib is not None, "callers check library() first"
    return lib


def _ptr(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None, events: int | None, out: torch.Tensor) -> None:
    """``events`` (the sum of ``x``, counted here when not given) sizes the OpenMP team."""
    events = spike_count(x) if events is None else events
    rows, n_in = x.shape
    _lib().linear_events(
        rows, n_in, weight_t.shape[1], events, x.data_ptr(), weight_t.data_ptr(), _ptr(bias), out.data_ptr(),
        torch.get_num_threads(),
    )  # fmt: skip


def conv2d(
    x: torch.Tensor,
    weight_t: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    events: int | None,
    out: torch.Tensor,
) -> None:
    events = spike_count(x) if events is None else events
    rows, c_in, h, w = x.shape
    _, kh, kw, c_out = weight_t.shape
    ho, wo = out.shape[2:]
    _lib().conv2d_events(
        rows, c_in, h, w, c_out, kh, kw, *stride, *padding, ho, wo, events,
        x.data_ptr(), weight_t.data_ptr(), _ptr(bias), out.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip


def avgpool2d(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], out: torch.Tensor
) -> None:
    rows, c, h, w = x.shape
    ho, wo = out.shape[2:]
    _lib().avgpool2d_events(
        rows, c, h, w, *kernel, *stride, *padding, ho, wo, x.data_ptr(), out.data_ptr(), torch.get_num_threads()
    )


def poisson(threshold: torch.Tensor, t0: int, seed: int, out: torch.Tensor) -> None:
    steps, batch, n = out.shape
    _lib().poisson_spikes(steps, batch, n, t0, seed, threshold.data_ptr(), out.data_ptr(), torch.get_num_threads())


def poisson_counts(table: torch.Tensor, row: torch.Tensor, t0: int, seed: int, out: torch.Tensor) -> None:
    steps, batch, n = out.shape
    _lib().poisson_counts(
        steps, batch, n, t0, seed, table.data_ptr(), *table.shape, row.data_ptr(), out.data_ptr(), torch.get_num_threads()
    )


def spike_count(x: torch.Tensor) -> int:
    return int(_lib().spike_count(x.data_ptr(), x.numel(), torch.get_num_threads()))


def row_starts(z: torch.Tensor) -> torch.Tensor:
    """(rows + 1) int64: where each row's events start in the event list, and the total last."""
    steps, batch, n = z.shape
    starts = torch.empty(steps * batch + 1, dtype=torch.int64)
    _lib().spike_rows(steps * batch, n, z.data_ptr(), starts.data_ptr(), torch.get_num_threads())
    return starts


def spike_events(z: torch.Tensor, t0: int, starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    steps, batch, n = z.shape
    total = int(starts[-1])
    times, batches, senders = (torch.empty(total, dtype=torch.int64) for _ in range(3))
    _lib().spike_events(
        steps, batch, n, t0, z.data_ptr(), starts.data_ptr(), times.data_ptr(), batches.data_ptr(), senders.data_ptr(),
        counts.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    return times, batches, senders
