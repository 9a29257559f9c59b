"""From a validated request to engine modules and input tensors.

``build_network`` turns the layer list into a ``SequentialState`` of engine modules and PyTorch
layers; ``InputStream`` produces the input for any range of steps. Both are deterministic in the
request's ``seed``: weights are drawn on the CPU in layer order (so every device starts from the
same network), and Poisson input is drawn per step from a generator seeded by (seed, step), so a
chunk of steps is the same whatever the chunking.

Synaptic layers (linear, conv2d, avgpool2d) are applied one step at a time (``PerStep``) so that
a result cannot depend on the chunk size. Spiking layers hand on bool spikes (one byte per
neuron-step); the layers after them take bool input.
"""

import math
from typing import Any

import numpy as np
import torch

import worker.engine as snn
from worker.schema import (
    AvgPool2dLayer,
    ConstantInput,
    Conv1dLayer,
    Conv2dLayer,
    FlattenLayer,
    InitSpec,
    IzhikevichLayer,
    JobRequest,
    LayerPlan,
    LIFRecurrentLayer,
    LinearLayer,
    Plan,
    PoissonInput,
    ScaleLayer,
    SpikesInput,
    TensorInput,
    ThresholdLayer,
)

PARAMETER_TYPES: dict[str, Any] = {
    "lif": (snn.LIF, snn.LIFParameters),
    "lifbox": (snn.LIFBox, snn.LIFBoxParameters),
    "li": (snn.LI, snn.LIParameters),
    "iaf": (snn.IAF, snn.IAFParameters),
    "alif": (snn.ALIF, snn.ALIFParameters),
    "lifadex": (snn.LIFAdEx, snn.LIFAdExParameters),
}


class PerStep(torch.nn.Module):
    """Applies a synaptic layer to each step separately, on a freshly allocated copy of the step.

    Both halves matter for chunk-independent results, as measured here: BLAS picks its summation
    order by row count (a 5->1 Linear differed by 6e-8 over 37 vs 500 rows), and MKL's kernels
    also round differently with the data's memory alignment (a step at another offset inside its
    chunk differed in the last bit). A fresh tensor is always 64-byte aligned.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # bool spikes become floats one step at a time, so no float copy of the whole chunk exists
        return torch.stack([self.module(x_t.clone() if x_t.is_floating_point() else snn.as_float(x_t)) for x_t in x])


def _without_initialisation(layer_type: type[torch.nn.Module]) -> type[torch.nn.Module]:
    """``layer_type`` minus its random initialisation: every weight and bias is set from the request
    right after construction, and initialising them first was half of a small job's build time."""
    return type(layer_type.__name__, (layer_type,), {"reset_parameters": lambda self: None})


_Linear, _Conv1d, _Conv2d = map(_without_initialisation, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d))


class Scale(torch.nn.Module):
    """Elementwise multiplication by a fixed per-feature factor."""

    def __init__(self, factor: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("factor", factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Threshold(torch.nn.Module):
    """Stateless spikes: 1.0 where the input exceeds a per-feature threshold."""

    def __init__(self, threshold: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("threshold", threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snn.heaviside(snn.as_float(x) - self.threshold)


def build_network(request: JobRequest, plan: Plan, record_states: frozenset[str] = frozenset()) -> snn.SequentialState:
    """The request's network as modules on the CPU, expecting input ``(T, B, *features)``.

    Layers named in ``record_states`` return the state of every step (for voltage recording).
    """
    generator = torch.Generator().manual_seed(request.seed)
    modules = [
        _build_layer(layer, layer_plan, generator, request.dt, layer_plan.name in record_states)
        for layer, layer_plan in zip(request.network.layers, plan.layers, strict=True)
    ]
    for module in modules:
        if isinstance(module, snn.SequenceModule):
            module.bool_spikes = True  # spikes stay one byte per neuron-step; consumers convert per step
    return snn.SequentialState(*modules, return_hidden=True)


def _weight(
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


def _build_layer(layer: Any, plan: LayerPlan, generator: torch.Generator, dt: float, record_states: bool) -> torch.nn.Module:
    if isinstance(layer, (LinearLayer, Conv1dLayer, Conv2dLayer)):
        if isinstance(layer, LinearLayer):
            module: torch.nn.Module = _Linear(layer.in_features, layer.out_features, bias=layer.bias is not False)
        else:
            conv = _Conv1d if isinstance(layer, Conv1dLayer) else _Conv2d
            module = conv(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                bias=layer.bias is not False,
            )
        weight_shape = tuple(module.weight.shape)
        bound = 1.0 / math.sqrt(math.prod(weight_shape[1:]))
        with torch.no_grad():
            module.weight.copy_(_weight(layer.weight, weight_shape, bound, generator, plan.arrays.get("weight")))
            if module.bias is not None:
                module.bias.copy_(_weight(layer.bias, tuple(module.bias.shape), bound, generator, plan.arrays.get("bias")))
        return PerStep(module)
    if isinstance(layer, AvgPool2dLayer):
        return PerStep(torch.nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding))
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
            key: _weight(getattr(layer, key), shape, None, generator, plan.arrays.get(key)) for key, shape in shapes.items()
        }
        return snn.LIFRecurrent(
            layer.in_features,
            layer.out_features,
            snn.LIFParameters(**_params(layer, plan)),
            autapses=layer.autapses,
            dt=dt,
            record_states=record_states,
            **weights,
        )
    module_type, parameter_type = PARAMETER_TYPES[layer.type]
    return module_type(parameter_type(**_params(layer, plan)), dt=dt, record_states=record_states)


def _mix(seed: int, step: int) -> int:
    """A well-spread 63-bit seed for step ``step`` (splitmix64 of seed and step)."""
    z = (seed * 0x9E3779B97F4A7C15 + step + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) >> 1


class InputStream:
    """The request's input as ``(steps, B, *features)`` float32 tensors, any range at a time."""

    def __init__(self, request: JobRequest, plan: Plan, device: torch.device) -> None:
        self.source = request.input
        self.plan = plan
        self.device = device
        self.seed = request.seed
        self.dt = request.dt
        self.sample = (plan.batch_size, *plan.input_shape)
        if isinstance(self.source, SpikesInput):
            order = np.argsort(np.asarray(self.source.times, dtype=np.int64), kind="stable")
            self.times = np.asarray(self.source.times, dtype=np.int64)[order]
            self.indices = np.asarray(self.source.indices, dtype=np.int64)[order]
            batch = self.source.batch if self.source.batch is not None else [0] * len(order)
            self.batch = np.asarray(batch, dtype=np.int64)[order]
        elif plan.input_array is not None:
            self.values = torch.from_numpy(np.ascontiguousarray(plan.input_array)).to(device)

    def chunk(self, start: int, stop: int) -> torch.Tensor:
        n = stop - start
        if isinstance(self.source, TensorInput):
            x = self.values[start:stop]
            return x if self.plan.batch else x.unsqueeze(1)
        if isinstance(self.source, ConstantInput):
            return self.values.expand(n, *self.sample)
        if isinstance(self.source, PoissonInput):
            probability = self.values * self.dt
            steps = []
            for t in range(start, stop):
                generator = torch.Generator(device=self.device).manual_seed(_mix(self.seed, t))
                draws = torch.rand(self.sample, generator=generator, device=self.device)
                steps.append((draws < probability).to(torch.float32))
            return torch.stack(steps)
        assert isinstance(self.source, SpikesInput)
        lo, hi = np.searchsorted(self.times, [start, stop])
        dense = torch.zeros((n, self.plan.batch_size, math.prod(self.plan.input_shape)), device=self.device)
        index = tuple(torch.from_numpy(a[lo:hi]).to(self.device) for a in (self.times - start, self.batch, self.indices))
        dense.index_put_(index, torch.ones(hi - lo, device=self.device), accumulate=True)
        return dense.reshape(n, *self.sample)
