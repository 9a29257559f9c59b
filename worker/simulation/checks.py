"""What both forms of network (a chain of layers, a graph) share in their semantic check: tensor
decoding, inputs, neuron parameters, record resolution and the neuron counts' limits.
``worker.simulation.chain_plan`` checks chains and ``worker.simulation.graph_plan`` graphs with
them, into the plans of ``worker.simulation.plans``. This module imports numpy and pydantic,
never torch.
"""

import base64
import binascii
import itertools
import json
import math
from typing import Any

import numpy as np

from worker.simulation.binomial import MAX_COUNT, count_thresholds
from worker.simulation.errors import Loc, fail, format_loc
from worker.simulation.limits import Limits
from worker.simulation.plans import LayerPlan, Plan
from worker.simulation.request import (
    MAX_DIMS,
    NOT_NEGATIVE_PARAMS,
    POSITIVE_PARAMS,
    AvgPool2dLayer,
    Base64Tensor,
    ConstantInput,
    Conv1dLayer,
    Conv2dLayer,
    FlattenLayer,
    InitSpec,
    JobRequest,
    LIFRecurrentLayer,
    LinearLayer,
    PoissonInput,
    ScaleLayer,
    SpikesInput,
    TensorData,
    TensorInput,
    ThresholdLayer,
)

# --- decoding helpers ---------------------------------------------------------------------------


def decode_tensor(data: TensorData | float, loc: Loc, max_bytes: int) -> np.ndarray:
    """Nested lists or base64 float32 -> a finite float32 array, or InvalidRequest at ``loc``."""
    if isinstance(data, Base64Tensor):
        count = math.prod(data.shape)
        if count * 4 > max_bytes:
            raise fail((*loc, "shape"), f"{count} values exceed the limit of {max_bytes // 4} for one tensor", "limit")
        try:
            raw = base64.b64decode(data.base64, validate=True)
        except (binascii.Error, ValueError):
            raise fail((*loc, "base64"), "is not valid base64") from None
        if len(raw) != count * 4:
            raise fail((*loc, "base64"), f"decodes to {len(raw)} bytes, but shape {data.shape} of float32 needs {count * 4}")
        array = np.frombuffer(raw, dtype="<f4").reshape(data.shape).astype(np.float32)
    else:
        if _nested_count(data, max_bytes // 4 + 1, loc) * 4 > max_bytes:
            raise fail(loc, f"has more than the limit of {max_bytes // 4} values for one tensor", "limit")
        try:
            array = np.asarray(data, dtype=np.float64)
        except (ValueError, TypeError):
            raise fail(loc, "must be a number or a rectangular nested list of numbers") from None
        if array.dtype == object:
            raise fail(loc, "must be a number or a rectangular nested list of numbers")
        _require_finite(array, loc)
        with np.errstate(over="ignore"):
            array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise fail(loc, "has values beyond the float32 range (about 3.4e38)")
    _require_finite(array, loc)
    return array


def _require_finite(array: np.ndarray, loc: Loc) -> None:
    if not np.isfinite(array).all():
        bad = [int(i) for i in np.argwhere(~np.isfinite(array))[0]]
        raise fail(loc, f"contains NaN or Inf (first at index {bad})")


NUMBER_TYPES = frozenset((int, float))  # JSON numbers as decoded (bool is neither)


def _nested_count(data: Any, stop: int, loc: Loc) -> int:
    """Number of leaves in a nested list, counted a nesting level at a time (each level's types
    taken in one C-level pass: a leaf at a time took seconds for a few million numbers), no
    further than the level where ``stop`` is reached. Every leaf must be a JSON number (not a
    string or a boolean), nested at most MAX_DIMS deep."""
    count, level, depth = 0, [data], 0
    while True:
        types = set(map(type, level))
        if types <= NUMBER_TYPES:
            return count + len(level)
        if not types <= NUMBER_TYPES | {list}:
            bad = next(item for item in level if type(item) not in NUMBER_TYPES and type(item) is not list)
            raise fail(loc, f"must hold numbers only, found {json.dumps(bad)[:40]}")
        if depth == MAX_DIMS:
            raise fail(loc, f"is nested more than {MAX_DIMS} lists deep")
        lists = [item for item in level if type(item) is list] if types != {list} else level
        count += len(level) - len(lists)
        if count >= stop:
            return count
        level, depth = list(itertools.chain.from_iterable(lists)), depth + 1


def shape_str(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def check_neuron_counts(plan: Plan, limits: Limits) -> None:
    if plan.neurons > limits.max_neurons:
        raise fail(("network",), f"has {plan.neurons} neurons, over the limit of {limits.max_neurons}", "limit")
    if plan.neuron_steps > limits.max_neuron_steps:
        raise fail(
            ("network",),
            f"{plan.neuron_steps} neuron-steps (neurons x batch x steps) are over the limit of {limits.max_neuron_steps}",
            "limit",
        )


def check_source(
    source: Any, request: JobRequest, limits: Limits, at: Loc = ("input",)
) -> tuple[int, int | None, tuple[int, ...], np.ndarray | None]:
    """An input (the chain's ``input`` or a graph's source node at ``at``): its steps, the batch,
    one sample's shape and its decoded values (tensor; constant values and Poisson rates as
    given, which broadcast to the sample's shape)."""
    batch = request.batch
    lead = 2 if batch else 1  # leading [steps, (batch)] dimensions of a tensor input

    def resolve_steps(own: int | None) -> int:
        if own is not None and request.steps is not None and own != request.steps:
            raise fail(("steps",), f"is {request.steps} but {format_loc(at)} gives {own} steps")
        steps = own if own is not None else request.steps
        if steps is None:
            raise fail((*at, "steps"), "is required for this input type (or give top-level 'steps')", "missing")
        return steps

    if isinstance(source, TensorInput):
        shape = tuple(source.shape)
        if len(shape) <= lead:
            need = "[steps, batch, *features]" if batch else "[steps, *features]"
            raise fail((*at, "shape"), f"must be {need}, got {shape_str(shape)}")
        if batch and shape[1] != batch:
            raise fail((*at, "shape"), f"has batch dimension {shape[1]}, but 'batch' is {batch}")
        if math.prod(shape) * 4 > limits.max_input_bytes:
            raise fail(
                (*at, "shape"), f"{math.prod(shape) * 4} bytes of input exceed the limit of {limits.max_input_bytes}", "limit"
            )
        array = decode_tensor(source.data, (*at, "data"), limits.max_input_bytes)
        if array.shape != shape:
            expected = f"{format_loc((*at, 'shape'))} is {shape_str(shape)}"
            raise fail((*at, "data"), f"has shape {shape_str(array.shape)}, but {expected}")
        steps = resolve_steps(shape[0])
        return steps, batch, shape[lead:], array

    if isinstance(source, SpikesInput):
        sample = tuple(source.size)
        if math.prod(sample) * 4 > limits.max_input_bytes:
            raise fail((*at, "size"), f"{math.prod(sample)} features exceed the input limit", "limit")
        steps = resolve_steps(source.steps)
        if len(source.indices) != len(source.times):
            raise fail((*at, "indices"), f"has {len(source.indices)} entries but times has {len(source.times)}")
        if source.batch is not None and len(source.batch) != len(source.times):
            raise fail((*at, "batch"), f"has {len(source.batch)} entries but times has {len(source.times)}")
        if source.batch is not None and not batch:
            raise fail((*at, "batch"), "is only allowed in a batched request (set top-level 'batch')")
        for name, values, bound in (
            ("times", source.times, steps),
            ("indices", source.indices, math.prod(sample)),
            ("batch", source.batch or [], request.batch or 1),
        ):
            if values and max(values) >= bound:
                position = int(np.argmax(np.asarray(values) >= bound))
                raise fail((*at, name, position), f"{values[position]} is out of range (must be < {bound})")
        return steps, batch, sample, None

    # constant and poisson: a value per feature, or one value with an explicit shape
    key = "value" if isinstance(source, ConstantInput) else "rates"
    decoded = decode_tensor(getattr(source, key), (*at, key), limits.max_input_bytes)
    if source.shape is not None:
        sample = tuple(source.shape)
        if decoded.ndim and not broadcasts(decoded.shape, sample):
            raise fail(
                (*at, key),
                f"has shape {shape_str(decoded.shape)}, which does not broadcast to "
                f"{format_loc((*at, 'shape'))} {shape_str(sample)}",
            )
    elif decoded.ndim:
        sample = decoded.shape
    else:
        raise fail((*at, "shape"), f"is required when '{key}' is a single number", "missing")
    if math.prod(sample) * 4 > limits.max_input_bytes:
        raise fail((*at, "shape"), f"{math.prod(sample)} features exceed the input limit", "limit")
    if isinstance(source, PoissonInput):
        if (decoded < 0).any():
            raise fail((*at, "rates"), "must not be negative")
        if (decoded * request.dt > 1).any():
            raise fail((*at, "rates"), f"exceed 1/dt = {1 / request.dt:g} Hz, at most one spike per step")
        if source.sources > 1:
            distinct = np.unique(decoded)
            if distinct.size * (MAX_COUNT + 1) * 8 > limits.max_input_bytes:
                raise fail((*at, "rates"), f"has {distinct.size} distinct rates, too many for count tables", "limit")
            try:
                count_thresholds(source.sources, distinct.astype(np.float64) * request.dt)
            except ValueError as error:
                raise fail((*at, "sources"), str(error)) from None
    steps = resolve_steps(source.steps)
    # as given, never expanded to the sample's shape: one rate for 12,000,000 features is one
    # value here (expanded, 24 such nodes held the API's event loop for seconds)
    return steps, batch, sample, decoded


def broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target), strict=False))


def check_params(layer: Any, plan: LayerPlan, loc: Loc, limits: Limits) -> None:
    for key, value in layer.params.model_dump(exclude_none=True).items():
        if isinstance(value, str):
            continue
        array = decode_tensor(value, (*loc, "params", key), limits.max_input_bytes)
        if array.ndim and not broadcasts(array.shape, plan.out_shape):
            raise fail(
                (*loc, "params", key),
                f"has shape {shape_str(array.shape)}, not broadcastable to the layer shape {shape_str(plan.out_shape)}",
            )
        if key in POSITIVE_PARAMS and (array <= 0).any():
            raise fail((*loc, "params", key), "must be positive")
        if key in NOT_NEGATIVE_PARAMS and (array < 0).any():
            raise fail((*loc, "params", key), "must be 0 or more")
        plan.arrays[f"params.{key}"] = array


def resolve_record(request: JobRequest, plan: Plan) -> None:
    by_name = {layer.name: layer for layer in plan.layers}
    record = request.record
    if record.spikes is None:
        plan.record_spikes = [layer.name for layer in plan.layers if layer.spikes]
    else:
        for position, name in enumerate(record.spikes):
            loc = ("record", "spikes", position)
            if name not in by_name:
                raise fail(loc, f"unknown layer {name!r}; layers are {', '.join(by_name)}")
            if not by_name[name].spikes:
                raise fail(loc, f"layer {name!r} ({by_name[name].type}) does not spike")
            if name in record.spikes[:position]:
                raise fail(loc, f"layer {name!r} is listed twice")
        plan.record_spikes = list(record.spikes)
    for position, name in enumerate(record.voltages):
        loc = ("record", "voltages", position)
        if name not in by_name:
            raise fail(loc, f"unknown layer {name!r}; layers are {', '.join(by_name)}")
        if not by_name[name].is_neuron:
            raise fail(loc, f"layer {name!r} ({by_name[name].type}) has no membrane voltage")
        if name in plan.record_voltages:
            raise fail(loc, f"layer {name!r} is listed twice")
        neurons = None if record.neurons is None else record.neurons.get(name)
        if neurons is not None:
            size = by_name[name].neurons
            bad = [i for i in neurons if i >= size]
            if bad:
                raise fail(("record", "neurons", name), f"index {bad[0]} is out of range for {size} neurons")
            plan.record_voltages[name] = np.asarray(neurons, dtype=np.int64)
        else:
            plan.record_voltages[name] = None
    for name in record.neurons or {}:
        if name not in plan.record_voltages:
            raise fail(("record", "neurons", name), "names a layer that is not in record.voltages")
    for position, name in enumerate(record.live):
        loc = ("record", "live", position)
        if name not in plan.record_spikes:
            raise fail(loc, f"layer {name!r} is not among the layers whose spikes are recorded ({', '.join(plan.record_spikes)})")
        if name in record.live[:position]:
            raise fail(loc, f"layer {name!r} is listed twice")
    plan.record_live = list(record.live)


def infer_layer(
    layer: Any, index: int, name: str, shape: tuple[int, ...], got: str, loc: Loc, limits: Limits
) -> tuple[LayerPlan, int]:
    """One layer (of a chain, or a layer node of a graph) on input ``shape``: its plan (output
    shape, decoded arrays) and its number of weights; ``got`` says where the shape came from."""
    parameters = 0
    plan = LayerPlan(index, name, layer.type, shape, shape)

    if isinstance(layer, (LinearLayer, LIFRecurrentLayer)):
        if not shape or shape[-1] != layer.in_features:
            raise fail((*loc, "in_features"), f"is {layer.in_features}, but {got}")
        plan.out_shape = (*shape[:-1], layer.out_features)
        if isinstance(layer, LinearLayer):
            weights = {"weight": (layer.out_features, layer.in_features), "bias": (layer.out_features,)}
        else:
            weights = {
                "input_weights": (layer.out_features, layer.in_features),
                "recurrent_weights": (layer.out_features, layer.out_features),
            }
    elif isinstance(layer, Conv2dLayer):
        if len(shape) != 3:
            raise fail(loc, f"conv2d needs [channels, height, width] per sample, but {got}")
        if shape[0] != layer.in_channels:
            raise fail((*loc, "in_channels"), f"is {layer.in_channels}, but {got}")
        kh, kw = layer.kernel_size
        if any(p >= k for p, k in zip(layer.padding, layer.kernel_size, strict=True)):
            raise fail((*loc, "padding"), f"must be less than the kernel size {[kh, kw]} in each dimension")
        plan.out_shape = (layer.out_channels, *pool_out(shape[1:], (kh, kw), layer.stride, layer.padding, loc))
        weights = {"weight": (layer.out_channels, layer.in_channels, kh, kw), "bias": (layer.out_channels,)}
    elif isinstance(layer, Conv1dLayer):
        if len(shape) != 2:
            raise fail(loc, f"conv1d needs [channels, length] per sample, but {got}")
        if shape[0] != layer.in_channels:
            raise fail((*loc, "in_channels"), f"is {layer.in_channels}, but {got}")
        if layer.padding >= layer.kernel_size:
            raise fail((*loc, "padding"), f"must be less than the kernel size {layer.kernel_size}")
        length = (shape[1] + 2 * layer.padding - layer.kernel_size) // layer.stride + 1
        if length < 1:
            raise fail(
                (*loc, "kernel_size"),
                f"{layer.kernel_size} does not fit the input of length {shape[1]} (padding {layer.padding})",
            )
        plan.out_shape = (layer.out_channels, length)
        weights = {"weight": (layer.out_channels, layer.in_channels, layer.kernel_size), "bias": (layer.out_channels,)}
    elif isinstance(layer, AvgPool2dLayer):
        if len(shape) != 3:
            raise fail(loc, f"avgpool2d needs [channels, height, width] per sample, but {got}")
        kernel = layer.kernel_size
        stride = layer.stride if layer.stride is not None else kernel
        padding = layer.padding
        if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
            raise fail((*loc, "padding"), f"must be at most half the kernel size {list(kernel)}")
        plan.out_shape = (shape[0], *pool_out(shape[1:], kernel, stride, padding, loc))
        weights = {}
    elif isinstance(layer, FlattenLayer):
        plan.out_shape = (math.prod(shape),)
        weights = {}
    elif isinstance(layer, (ScaleLayer, ThresholdLayer)):
        key = "weight" if isinstance(layer, ScaleLayer) else "threshold"
        values = decode_tensor(getattr(layer, key), (*loc, key), limits.max_input_bytes)
        if values.ndim and not broadcasts(values.shape, shape):
            raise fail((*loc, key), f"has shape {shape_str(values.shape)}, not broadcastable to {shape_str(shape)}")
        plan.arrays[key] = values
        weights = {}
    else:
        weights = {}
    for key, expected in weights.items():
        value = getattr(layer, key, None)
        if isinstance(value, (list, Base64Tensor)):
            array = decode_tensor(value, (*loc, key), limits.max_input_bytes)
            if array.shape != expected:
                raise fail((*loc, key), f"has shape {shape_str(array.shape)}, expected {shape_str(expected)}")
            plan.arrays[key] = array
        if isinstance(value, InitSpec) and value.init == "uniform" and value.low > value.high:
            raise fail((*loc, key, "low"), "must not exceed high")
        if value is not False:
            parameters += math.prod(expected)
    if hasattr(layer, "params"):
        check_params(layer, plan, loc, limits)
    return plan, parameters


def pool_out(
    size: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], loc: Loc
) -> tuple[int, int]:
    out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding, strict=True))
    if min(out) < 1:
        raise fail((*loc, "kernel_size"), f"{list(kernel)} does not fit the input of size {list(size)} (padding {list(padding)})")
    return out  # type: ignore[return-value]
