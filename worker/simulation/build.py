"""From a validated request to engine modules and input tensors.

``build_network`` turns the layer list into a ``SequentialState`` of engine modules;
``InputStream`` produces the input for any range of steps. Both are deterministic in the
request's ``seed``: weights are drawn on the CPU in layer order (so every device starts from the
same network), and Poisson input comes from a counter-based generator (Philox of seed, step,
batch entry and neuron), so any range of steps is drawn in one call, the same whatever the
chunking and the same on every device.

Every layer runs once per chunk over all its steps and batch entries. Spiking layers hand on bool
spikes (one byte per neuron-step); the synaptic layers after them add up the weights of the
active inputs (``worker.engine.synapses``), which does not depend on the chunking either. Dense
float input takes one GEMM per chunk, whose rounding may depend on the chunk's row count: the
runner's chunks are fixed by the request alone (``worker.simulation.cost``), so a rerun gives the same bits.
"""

import math
from typing import Any

import numpy as np
import torch

import worker.engine as snn
from worker.engine.events import poisson_counts, poisson_spikes, poisson_thresholds
from worker.engine.synapses import AvgPool2d, Conv, Linear
from worker.registry import MODELS
from worker.simulation.binomial import count_thresholds
from worker.simulation.plans import LayerPlan, Plan
from worker.simulation.request import (
    AvgPool2dLayer,
    ConstantInput,
    Conv1dLayer,
    Conv2dLayer,
    FlattenLayer,
    InitSpec,
    IzhikevichLayer,
    JobRequest,
    LIFRecurrentLayer,
    LinearLayer,
    Network,
    PoissonInput,
    ScaleLayer,
    SpikesInput,
    TensorInput,
    ThresholdLayer,
)

# Each input of a graph draws its Poisson spikes under its own Philox key: the seed plus its stream
# number times this odd constant (2^64 / golden ratio), modulo 2^64; stream 0's key is the seed.
STREAM_KEY_STEP = 0x9E3779B97F4A7C15


class Scale(torch.nn.Module):
    """Elementwise multiplication by a fixed per-feature factor."""

    factor: torch.Tensor

    def __init__(self, factor: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("factor", factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Threshold(torch.nn.Module):
    """Stateless spikes: 1.0 where the input exceeds a per-feature threshold."""

    threshold: torch.Tensor

    def __init__(self, threshold: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("threshold", threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snn.as_float(x) - self.threshold > 0  # bool spikes, like the neuron layers'


def build_network(request: JobRequest, plan: Plan, record_states: frozenset[str] = frozenset()) -> snn.SequentialState:
    """The request's network as modules on the CPU, expecting input ``(T, B, *features)``.

    Layers named in ``record_states`` return the state of every step (for voltage recording).
    """
    assert isinstance(request.network, Network)
    generator = torch.Generator().manual_seed(request.seed)
    modules = [
        build_layer(layer, layer_plan, generator, request.dt, layer_plan.name in record_states)
        for layer, layer_plan in zip(request.network.layers, plan.layers, strict=True)
    ]
    for module in modules:
        if isinstance(module, snn.SequenceModule):
            module.bool_spikes = True  # spikes stay one byte per neuron-step; consumers convert per step
    return snn.SequentialState(*modules, return_hidden=True)


def draw_weight(
    value: Any, shape: tuple[int, ...], default_bound: float | None, generator: torch.Generator, decoded: np.ndarray | None
) -> torch.Tensor:
    if decoded is not None:
        return torch.from_numpy(decoded.copy())
    if isinstance(value, InitSpec):
        if value.init == "normal":
            return torch.randn(shape, generator=generator) * value.std + value.mean
        if value.init == "uniform":
            return value.low + (value.high - value.low) * torch.rand(shape, generator=generator)
        return torch.full(shape, value.value)
    if default_bound is None:  # recurrent layers: Norse's initialisation
        return torch.randn(shape, generator=generator) * math.sqrt(2.0 / shape[0])
    # PyTorch's default for Linear and Conv2d weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    return (torch.rand(shape, generator=generator) * 2 - 1) * default_bound


def _params(layer: Any, plan: LayerPlan) -> dict[str, Any]:
    values = layer.params.model_dump(exclude_none=True)
    for key in values:
        if f"params.{key}" in plan.arrays and plan.arrays[f"params.{key}"].ndim:
            values[key] = torch.from_numpy(plan.arrays[f"params.{key}"].copy())
    return values


def build_layer(layer: Any, plan: LayerPlan, generator: torch.Generator, dt: float, record_states: bool) -> torch.nn.Module:
    if isinstance(layer, (LinearLayer, Conv1dLayer, Conv2dLayer)):
        if isinstance(layer, LinearLayer):
            weight_shape: tuple[int, ...] = (layer.out_features, layer.in_features)
        else:
            kernel = (layer.kernel_size,) if isinstance(layer, Conv1dLayer) else tuple(layer.kernel_size)
            weight_shape = (layer.out_channels, layer.in_channels, *kernel)
        bound = 1.0 / math.sqrt(math.prod(weight_shape[1:]))  # PyTorch's default initialisation
        weight = draw_weight(layer.weight, weight_shape, bound, generator, plan.arrays.get("weight"))
        bias = None
        if layer.bias is not False:
            bias = draw_weight(layer.bias, weight_shape[:1], bound, generator, plan.arrays.get("bias"))
        if isinstance(layer, LinearLayer):
            return Linear(weight, bias)
        stride, padding = ((layer.stride,), (layer.padding,)) if isinstance(layer, Conv1dLayer) else (layer.stride, layer.padding)
        return Conv(weight, bias, stride, padding, plan.in_shape)
    if isinstance(layer, AvgPool2dLayer):
        channels, height, width = plan.in_shape
        return AvgPool2d(layer.kernel_size, layer.stride or layer.kernel_size, layer.padding, (channels, height, width))
    if isinstance(layer, FlattenLayer):
        return torch.nn.Flatten(start_dim=2)
    if isinstance(layer, ScaleLayer):
        return Scale(torch.from_numpy(plan.arrays["weight"].copy()))
    if isinstance(layer, ThresholdLayer):
        return Threshold(torch.from_numpy(plan.arrays["threshold"].copy()))
    if isinstance(layer, IzhikevichLayer):
        preset = snn.IZHIKEVICH_PRESETS[layer.preset]
        overrides = _params(layer, plan)
        p = preset.p._replace(**overrides)
        v0 = preset.v0 if layer.v0 is None else layer.v0
        if layer.u0 is not None:
            u0: Any = layer.u0
        elif layer.v0 is None and "b" not in overrides:
            u0 = preset.u0
        else:
            u0 = p.b * v0
        return snn.Izhikevich(snn.IzhikevichSpikingBehavior(p, v0, u0), dt=dt, record_states=record_states)
    if isinstance(layer, LIFRecurrentLayer):
        shapes = {"input_weights": (layer.out_features, layer.in_features), "recurrent_weights": (layer.out_features,) * 2}
        weights = {
            key: draw_weight(getattr(layer, key), shape, None, generator, plan.arrays.get(key)) for key, shape in shapes.items()
        }
        return snn.LIFRecurrent(
            layer.in_features,
            layer.out_features,
            getattr(snn, MODELS[layer.type].parameter_type)(**_params(layer, plan)),
            autapses=layer.autapses,
            dt=dt,
            record_states=record_states,
            **weights,
        )
    # any other model is built from its parameters alone (and its channels), by the classes its registry entry names
    model = MODELS[layer.type]
    module_type, parameter_type = getattr(snn, model.engine), getattr(snn, model.parameter_type)
    options: dict[str, Any] = {"channels": channels_of(plan)} if model.channels else {}
    return module_type(parameter_type(**_params(layer, plan)), dt=dt, record_states=record_states, **options)


def channels_of(plan: LayerPlan) -> snn.Channels:
    """A population's synaptic channels as the engine takes them."""
    return snn.Channels(
        tuple(channel.conductance for channel in plan.channels),
        tuple(channel.tau_syn for channel in plan.channels),
        tuple(channel.e_rev for channel in plan.channels),
    )


class InputStream:
    """An input's values for any range of steps, as ``(steps, B, *features)`` tensors: float32
    currents (tensor, constant), bool spikes (Poisson; a spike list without repeated events) or
    uint8 counts (Poisson with several sources per feature; a spike list that repeats an event).

    ``stream`` tells a graph's inputs apart: each draws its Poisson spikes under its own key.
    """

    def __init__(
        self,
        source: Any,
        shape: tuple[int, ...],
        array: np.ndarray | None,
        batch: int | None,
        request: JobRequest,
        device: torch.device,
        stream: int = 0,
    ) -> None:
        self.source = source
        self.shape = shape
        self.batched = batch is not None
        self.batch_size = batch or 1
        self.device = device
        self.seed = (request.seed + stream * STREAM_KEY_STEP) % 2**64
        self.sample = (self.batch_size, *shape)
        if isinstance(source, SpikesInput):
            order = np.argsort(np.asarray(source.times, dtype=np.int64), kind="stable")
            self.times = np.asarray(source.times, dtype=np.int64)[order]
            self.indices = np.asarray(source.indices, dtype=np.int64)[order]
            entries = source.batch if source.batch is not None else [0] * len(order)
            self.batch = np.asarray(entries, dtype=np.int64)[order]
        elif isinstance(source, PoissonInput):
            assert array is not None
            probability = array.astype(np.float64) * request.dt  # as given: tables of its distinct values
            if source.sources > 1:
                table, row = count_thresholds(source.sources, probability)
                self.table, self.row = torch.from_numpy(table).to(device), self._per_feature(row, probability.shape)
            else:
                self.thresholds = self._per_feature(poisson_thresholds(probability), probability.shape)
        elif array is not None:  # a tensor's values, or a constant's as given (expanded when taken)
            self.values = torch.from_numpy(np.ascontiguousarray(array)).to(device)

    def _per_feature(self, values: np.ndarray, given: tuple[int, ...]) -> torch.Tensor:
        """``values`` of the input's ``given`` shape, one per feature of a sample (the kernels'
        layout): the only copy as large as the input (worker.simulation.cost counts it)."""
        spread = np.broadcast_to(values.reshape(given), self.shape).reshape(-1)
        if not spread.flags.writeable:  # the broadcast view itself (nothing was spread): torch wants its own copy
            spread = spread.copy()
        return torch.from_numpy(spread).to(self.device)

    @classmethod
    def of(cls, request: JobRequest, plan: Plan, device: torch.device) -> "InputStream":
        """The input of a network of layers."""
        return cls(request.input, plan.input_shape, plan.input_array, plan.batch, request, device)

    def chunk(self, start: int, stop: int) -> torch.Tensor:
        n = stop - start
        if isinstance(self.source, TensorInput):
            x = self.values[start:stop]
            return x if self.batched else x.unsqueeze(1)
        if isinstance(self.source, ConstantInput):
            return self.values.expand(n, *self.sample)
        if isinstance(self.source, PoissonInput):
            if self.source.sources > 1:
                counts = poisson_counts(self.table, self.row, start, n, self.batch_size, self.seed)
                return counts.reshape(n, *self.sample)
            return poisson_spikes(self.thresholds, start, n, self.batch_size, self.seed).reshape(n, *self.sample)
        assert isinstance(self.source, SpikesInput)
        lo, hi = np.searchsorted(self.times, [start, stop])
        flat = (self.times[lo:hi] - start) * self.batch_size + self.batch[lo:hi]
        flat = flat * math.prod(self.shape) + self.indices[lo:hi]
        counts = torch.bincount(torch.from_numpy(flat), minlength=n * math.prod(self.sample))
        most = int(counts.max()) if counts.numel() else 0
        dtype = torch.bool if most <= 1 else torch.uint8 if most <= 255 else torch.float32
        return counts.to(device=self.device, dtype=dtype).reshape(n, *self.sample)
