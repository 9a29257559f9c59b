"""Synaptic layers over a whole sequence: one pass per chunk of steps.

``Linear``, ``Conv`` (1-d or 2-d) and ``AvgPool2d`` take time-major input ``(T, B, *features)``
and treat its ``T * B`` rows as one batch. Spikes (bool or uint8 counts) sparse enough for it go
through the event kernels (``worker.engine.events``): the active inputs' weight rows added in a
fixed order, so each row's result is independent of the chunk around it. Denser spikes and float
input take one dense GEMM or convolution over all rows. The choice is made per call from the
input's activity against a crossover measured on the CPU (benchmarks/RESULTS.md); it depends on
the data alone, so a rerun of the same chunk makes the same choice.
"""

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from worker.engine import events

__all__ = ["AvgPool2d", "Conv", "Linear"]


class Synapse(torch.nn.Module):
    """A stateless layer applied to all ``T * B`` rows of a sequence at once."""

    # activity (events over inputs x rows) below which the event kernels are used
    crossover: ClassVar[float]
    in_shape: tuple[int, ...]
    weight_t: torch.Tensor  # buffers, where a layer has them
    bias: torch.Tensor | None
    # Each batch entry of a (T, B, ...) input computed as if it ran alone (B = 1): the choice
    # between events and dense made from its own activity, a dense entry as one GEMM over its own
    # T rows. Bit for bit what a run of that entry alone gives: a sweep's batched points.
    per_entry: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[: x.dim() - len(self.in_shape)]
        if self.per_entry and len(lead) == 2 and lead[1] > 1:
            return self._per_entry(x)
        rows = x.reshape(math.prod(lead), *self.in_shape)
        event_count = self._event_count(rows)
        if event_count is not None:
            out = self.events(rows, event_count)
        else:
            out = self.dense(rows if rows.is_floating_point() else rows.to(torch.float32))
        return out.reshape(*lead, *out.shape[1:])

    def _event_count(self, rows: torch.Tensor) -> int | None:
        """The number of events when ``rows`` go through the event kernels, None for dense."""
        if rows.dtype in events.SPIKE_DTYPES and events.available(rows.device):
            count = events.spike_count(rows)
            if count <= self.crossover * rows.numel():
                return count
        return None

    def _per_entry(self, x: torch.Tensor) -> torch.Tensor:
        steps, entries = x.shape[:2]
        alone = [x[:, entry].contiguous() for entry in range(entries)]  # (T, *in) each, as a run alone has it
        counts = [self._event_count(rows) for rows in alone]
        sparse = sum(count is not None for count in counts)
        out: torch.Tensor | None = None
        if sparse:  # every row through the event kernels where it lies: each row's sum is independent of the others
            rows = x.reshape(steps * entries, *self.in_shape)
            summed = self.events(rows, events.spike_count(rows))
            out = summed.reshape(steps, entries, *summed.shape[1:])
        for entry, count in enumerate(counts):
            if count is None:  # this entry alone would go dense: one GEMM over its own rows, replacing its sums
                rows = alone[entry]
                dense = self.dense(rows if rows.is_floating_point() else rows.to(torch.float32))
                if out is None:
                    out = torch.empty((steps, entries, *dense.shape[1:]), dtype=dense.dtype, device=dense.device)
                out[:, entry] = dense
        assert out is not None
        return out

    def events(self, rows: torch.Tensor, count: int) -> torch.Tensor:
        raise NotImplementedError

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Linear(Synapse):
    """``y = x W^T + b`` with ``weight`` (out, in), stored input-major: one contiguous row per input."""

    crossover = 0.2  # events measured faster up to 0.2, even at 0.3 (1000 -> 1000, 16,000 rows)

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_shape = (weight.shape[1],)
        self.register_buffer("weight_t", weight.t().contiguous())
        self.register_buffer("bias", bias)

    @property
    def weight(self) -> torch.Tensor:
        """(out, in), as PyTorch's ``Linear`` holds it."""
        return self.weight_t.t()

    def events(self, rows: torch.Tensor, count: int) -> torch.Tensor:
        return events.linear_events(rows, self.weight_t, self.bias, count)

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        return rows @ self.weight_t if self.bias is None else torch.addmm(self.bias, rows, self.weight_t)


class Conv(Synapse):
    """A convolution (groups 1, dilation 1) over ``(channels, length)`` or ``(channels, height,
    width)``; ``weight`` is (out, in, *kernel) as in PyTorch."""

    crossover = 0.08  # events measured faster up to 0.1 (8 -> 16 channels, 3 x 3 on 28 x 28)

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        in_shape: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.in_shape = in_shape
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.weight: torch.Tensor
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        # input-major for the events; a 1-d convolution is a 2-d one of height 1
        weight_2d = weight if weight.dim() == 4 else weight.unsqueeze(2)
        self.register_buffer("weight_t", weight_2d.permute(1, 2, 3, 0).contiguous())

    def _as_2d(self, values: tuple[int, ...], fill: int) -> tuple[int, int]:
        return (values[0], values[1]) if len(values) == 2 else (fill, values[0])

    def events(self, rows: torch.Tensor, count: int) -> torch.Tensor:
        planar = rows if rows.dim() == 4 else rows.unsqueeze(2)
        stride, padding = self._as_2d(self.stride, 1), self._as_2d(self.padding, 0)
        out = events.conv2d_events(planar, self.weight_t, self.bias, stride, padding, count)
        return out if rows.dim() == 4 else out.squeeze(2)

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d if rows.dim() == 4 else F.conv1d
        return conv(rows, self.weight, self.bias, self.stride, self.padding)


class AvgPool2d(Synapse):
    """PyTorch's ``AvgPool2d`` (zero padding counted in the average) over ``(channels, height, width)``."""

    crossover = 0.2  # events measured faster up to 0.2 (2 x 2 on 8 x 28 x 28)

    def __init__(
        self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], in_shape: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = (kernel[0], kernel[1]), (stride[0], stride[1]), (padding[0], padding[1])
        self.in_shape = in_shape

    def events(self, rows: torch.Tensor, count: int) -> torch.Tensor:
        return events.avgpool2d_events(rows, self.kernel, self.stride, self.padding)

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(rows, self.kernel, self.stride, self.padding)
