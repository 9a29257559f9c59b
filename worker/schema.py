"""The job request: one pydantic model tree, and the semantic check that completes it.

``JobRequest`` describes the JSON structure (types, ranges, unknown fields). ``validate_request``
then does everything that needs more than one field at a time: it decodes inline tensors, rejects
NaN and Inf, infers the shape of every layer from the input, checks weight shapes and parameter
broadcasting, resolves ``record`` and enforces the size limits. It returns a ``Plan`` that the
runner executes, and raises ``InvalidRequest`` naming the field path of the first problem.

The API calls it before a job is queued and the worker calls it again on the same JSON, so no
request reaches the engine unchecked. This module imports numpy and pydantic, never torch.
"""

import base64
import binascii
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from worker.cost import Cost, check_cost, job_cost

Loc = tuple[str | int, ...]
# No path separators and no name made of dots alone: names become NPZ entries ``<layer>/times``.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
NAME_HELP = "letters, digits, '_', '-', '.', starting with a letter, digit or '_'; 1-64 characters"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description=NAME_HELP)]
MAX_DIMS = 8  # dimensions of any tensor or shape in a request (numpy stops at 64)
Shape = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1, max_length=MAX_DIMS)]
MIN_DT = 1e-6  # seconds: a microsecond step is finer than any model here needs
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]

# Kept equal to worker.engine's lists by tests/test_schema.py (this module must not import torch).
THRESHOLD_METHODS = ("heaviside", "super", "fast_sigmoid", "triangle", "tanh", "atan")
RESET_METHODS = ("value", "subtract")
IZHIKEVICH_PRESET_NAMES = (
    "tonic_spiking", "phasic_spiking", "tonic_bursting", "phasic_bursting", "mixed_mode",
    "spike_frequency_adaptation", "class_1_exc", "class_2_exc", "spike_latency",
    "subthreshold_oscillation", "resonator", "integrator", "rebound_spike", "rebound_burst",
    "threshold_variability", "bistability", "dap", "accommodation", "inhibition_induced_spiking",
    "inhibition_induced_bursting",
)  # fmt: skip


class Strict(BaseModel):
    """Unknown fields are errors, and values are never coerced: ``"3"`` or ``true`` is not an integer."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


# --- tensors ------------------------------------------------------------------------------------


class Base64Tensor(Strict):
    """A little-endian float32 array: ``{"dtype": "float32", "shape": [...], "base64": "..."}``."""

    dtype: Literal["float32"] = "float32"
    shape: Annotated[list[NonNegativeInt], Field(max_length=MAX_DIMS, description="the array's shape, at most 8 dimensions")]
    base64: str = Field(description="the values in row-major (C) order, 4 bytes each, little-endian, base64-encoded")


class InitSpec(Strict):
    """Weights drawn from the request's ``seed``: ``{"init": "normal", "mean": 0, "std": 0.1}``,
    ``{"init": "uniform", "low": -1, "high": 1}`` or ``{"init": "constant", "value": 0.5}``."""

    init: Literal["normal", "uniform", "constant"] = Field(description="the distribution")
    mean: Finite = Field(default=0.0, description="normal: its mean")
    std: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(default=1.0, description="normal: its standard deviation")
    low: Finite = Field(default=-1.0, description="uniform: the lower bound")
    high: Finite = Field(default=1.0, description="uniform: the upper bound")
    value: Finite = Field(default=0.0, description="constant: every weight's value")


# Unions of leaf values use callable discriminators so that a bad value gets one clear message
# instead of one per alternative; the tags are removed from error paths (``clean_loc``).
LEAF_TAGS = ("flag", "number", "nested-list", "base64-tensor", "init-spec")


def _value_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "nested-list"
    if isinstance(value, InitSpec) or (isinstance(value, dict) and "init" in value):
        return "init-spec"
    if isinstance(value, (Base64Tensor, dict)):
        return "base64-tensor"
    return None


NestedList = Annotated[list[Any], Tag("nested-list")]
Base64Value = Annotated[Base64Tensor, Tag("base64-tensor")]
InitValue = Annotated[InitSpec, Tag("init-spec")]
TENSOR_HELP = "must be a nested list of numbers or {dtype, shape, base64}"
WEIGHT_HELP = "must be a nested list of numbers, {dtype, shape, base64} or {init, ...}"
TensorData = Annotated[
    NestedList | Base64Value, Discriminator(_value_kind, custom_error_type="tensor", custom_error_message=TENSOR_HELP)
]
WeightData = Annotated[
    NestedList | Base64Value | InitValue, Discriminator(_value_kind, custom_error_type="tensor", custom_error_message=WEIGHT_HELP)
]
BiasData = Annotated[
    Annotated[bool, Tag("flag")] | NestedList | Base64Value | InitValue,
    Discriminator(_value_kind, custom_error_type="tensor", custom_error_message="must be true, false or " + WEIGHT_HELP[8:]),
]
ParamValue = Annotated[
    Annotated[Finite, Tag("number")] | NestedList,
    Discriminator(
        _value_kind, custom_error_type="number", custom_error_message="must be a finite number or a nested list of numbers"
    ),
]


def _pair(value: Any) -> Any:
    """An integer means the same value for height and width; a JSON list becomes a tuple."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    return tuple(value) if isinstance(value, list) else value


Pair = Annotated[tuple[PositiveInt, PositiveInt], BeforeValidator(_pair), Field(description="an integer or [height, width]")]
NonNegativePair = Annotated[
    tuple[NonNegativeInt, NonNegativeInt], BeforeValidator(_pair), Field(description="an integer or [height, width]")
]


# --- layers -------------------------------------------------------------------------------------


class LayerBase(Strict):
    name: Name | None = Field(default=None, description="defaults to '<type>_<index>'")


class LinearLayer(LayerBase):
    """A dense synaptic layer: ``y = x W^T + b`` on the last dimension (PyTorch's ``Linear``)."""

    type: Literal["linear"]
    in_features: PositiveInt = Field(description="size of the input's last dimension")
    out_features: PositiveInt = Field(description="size of the output's last dimension")
    weight: WeightData | None = Field(
        default=None, description="(out_features, in_features); omitted: PyTorch's default init from seed"
    )
    bias: BiasData = Field(default=True, description="true: initialised from seed; false: no bias; or values")


class Conv2dLayer(LayerBase):
    """A 2-d convolution over ``[channels, height, width]`` per sample (PyTorch's ``Conv2d``,
    dilation 1, groups 1)."""

    type: Literal["conv2d"]
    in_channels: PositiveInt = Field(description="channels of the input")
    out_channels: PositiveInt = Field(description="channels of the output")
    kernel_size: Pair
    stride: Pair = (1, 1)
    padding: NonNegativePair = Field(default=(0, 0), description="zeros added on each side; less than the kernel size")
    weight: WeightData | None = Field(
        default=None, description="(out_channels, in_channels, kh, kw); omitted: PyTorch's default init from seed"
    )
    bias: BiasData = Field(default=True, description="true: initialised from seed; false: no bias; or values")


class Conv1dLayer(LayerBase):
    """A 1-d convolution over ``[channels, length]`` per sample (PyTorch's ``Conv1d``, dilation 1,
    groups 1)."""

    type: Literal["conv1d"]
    in_channels: PositiveInt = Field(description="channels of the input")
    out_channels: PositiveInt = Field(description="channels of the output")
    kernel_size: PositiveInt
    stride: PositiveInt = 1
    padding: NonNegativeInt = Field(default=0, description="zeros added on each side; less than the kernel size")
    weight: WeightData | None = Field(
        default=None, description="(out_channels, in_channels, k); omitted: PyTorch's default init from seed"
    )
    bias: BiasData = Field(default=True, description="true: initialised from seed; false: no bias; or values")


class ThresholdLayer(LayerBase):
    """Stateless spikes where the input exceeds ``threshold`` (NIR's Threshold): 1.0 or 0.0."""

    type: Literal["threshold"]
    threshold: ParamValue = Field(default=0.0, description="per feature; broadcasts to the input's shape")


class FlattenLayer(LayerBase):
    """All dimensions of a sample into one (``[c, h, w]`` becomes ``[c * h * w]``)."""

    type: Literal["flatten"]


class AvgPool2dLayer(LayerBase):
    """Average pooling over ``[channels, height, width]`` per sample (PyTorch's ``AvgPool2d``)."""

    type: Literal["avgpool2d"]
    kernel_size: Pair
    stride: Pair | None = Field(default=None, description="defaults to kernel_size")
    padding: NonNegativePair = Field(default=(0, 0), description="zeros added on each side; at most half the kernel size")


class ScaleLayer(LayerBase):
    """Multiplies each feature by a factor (NIR's Scale): ``weight`` broadcasts to the shape."""

    type: Literal["scale"]
    weight: ParamValue = Field(description="per feature; broadcasts to the input's shape")


class SpikingParams(Strict):
    """Omitted parameters take the engine's defaults. Numbers may be per-neuron nested lists that
    broadcast against the layer's shape."""

    v_th: ParamValue | None = None
    method: Literal[THRESHOLD_METHODS] | None = None  # type: ignore[valid-type]
    alpha: ParamValue | None = None


class ResettingParams(SpikingParams):
    v_reset: ParamValue | None = None
    reset_method: Literal[RESET_METHODS] | None = None  # type: ignore[valid-type]


class LIFParams(ResettingParams):
    tau_syn_inv: ParamValue | None = None
    tau_mem_inv: ParamValue | None = None
    v_leak: ParamValue | None = None


class LIFBoxParams(ResettingParams):
    tau_mem_inv: ParamValue | None = None
    v_leak: ParamValue | None = None


class LIParams(Strict):
    tau_syn_inv: ParamValue | None = None
    tau_mem_inv: ParamValue | None = None
    v_leak: ParamValue | None = None


class ALIFParams(LIFParams):
    tau_adapt_inv: ParamValue | None = None
    beta: ParamValue | None = None


class LIFAdExParams(LIFParams):
    adaptation_current: ParamValue | None = None
    adaptation_spike: ParamValue | None = None
    delta_T: ParamValue | None = None
    tau_ada_inv: ParamValue | None = None


class IzhikevichParams(SpikingParams):
    a: ParamValue | None = None
    b: ParamValue | None = None
    c: ParamValue | None = None
    d: ParamValue | None = None
    sq: ParamValue | None = None
    mn: ParamValue | None = None
    bias: ParamValue | None = None
    tau_inv: ParamValue | None = None


class LIFLayer(LayerBase):
    """Current-based leaky integrate-and-fire neurons (Norse's ``LIF``): the input jumps into a
    synaptic current that decays and drives the membrane."""

    type: Literal["lif"]
    params: LIFParams = LIFParams()


class LIFBoxLayer(LayerBase):
    """Leaky integrate-and-fire neurons without a synaptic current: the input drives the membrane."""

    type: Literal["lifbox"]
    params: LIFBoxParams = LIFBoxParams()


class LILayer(LayerBase):
    """Leaky integrators (a read-out): LIF dynamics without threshold; record their voltages."""

    type: Literal["li"]
    params: LIParams = LIParams()


class IAFLayer(LayerBase):
    """Integrate-and-fire neurons without leak: the membrane adds up its input."""

    type: Literal["iaf"]
    params: ResettingParams = ResettingParams()


class ALIFLayer(LayerBase):
    """LIF neurons with an adaptive threshold (LSNN): each spike raises the threshold by ``beta``,
    which decays back with ``tau_adapt_inv``."""

    type: Literal["alif"]
    params: ALIFParams = ALIFParams()


class LIFAdExLayer(LayerBase):
    """Adaptive exponential LIF neurons (Norse's ``LIFAdEx``)."""

    type: Literal["lifadex"]
    params: LIFAdExParams = LIFAdExParams()


class IzhikevichLayer(LayerBase):
    """Izhikevich neurons, from one of the 20 classic behaviours of Izhikevich (2004)."""

    type: Literal["izhikevich"]
    preset: Literal[IZHIKEVICH_PRESET_NAMES] = Field(default="tonic_spiking", description="the behaviour")  # type: ignore[valid-type]
    params: IzhikevichParams = Field(default=IzhikevichParams(), description="overrides of the preset's parameters")
    v0: Finite | None = Field(default=None, description="initial voltage; defaults to the preset's")
    u0: Finite | None = Field(default=None, description="initial recovery variable; defaults to the preset's")


class LIFRecurrentLayer(LayerBase):
    """LIF neurons with input weights and recurrent weights among themselves (Norse's
    ``LIFRecurrent``): last step's spikes jump into this step's current."""

    type: Literal["lif_recurrent"]
    in_features: PositiveInt = Field(description="size of the input's last dimension")
    out_features: PositiveInt = Field(description="neurons")
    input_weights: WeightData | None = Field(
        default=None, description="(out_features, in_features); omitted: Norse's init from seed"
    )
    recurrent_weights: WeightData | None = Field(
        default=None, description="(out_features, out_features), row = target; omitted: Norse's init from seed"
    )
    autapses: bool = Field(default=False, description="false: a neuron's connection to itself is always zero")
    params: LIFParams = LIFParams()


NeuronLayer = LIFLayer | LIFBoxLayer | LILayer | IAFLayer | ALIFLayer | LIFAdExLayer | IzhikevichLayer | LIFRecurrentLayer
Layer = Annotated[
    LinearLayer | Conv1dLayer | Conv2dLayer | FlattenLayer | AvgPool2dLayer | ScaleLayer | ThresholdLayer | NeuronLayer,
    Field(discriminator="type"),
]
LAYER_TYPES = tuple(
    typing.get_args(member.model_fields["type"].annotation)[0] for member in typing.get_args(typing.get_args(Layer)[0])
)
NEURON_TYPES = tuple(typing.get_args(member.model_fields["type"].annotation)[0] for member in typing.get_args(NeuronLayer))
NON_SPIKING_TYPES = ("li",)
POSITIVE_PARAMS = ("tau_syn_inv", "tau_mem_inv", "tau_adapt_inv", "tau_ada_inv", "tau_inv", "delta_T")


class Network(Strict):
    """The layers in order; or ``{"nir": "<base64 of a NIR file>"}``, converted to layers with
    the request's ``dt`` (the README's NIR section gives the mapping)."""

    layers: list[Layer] = Field(min_length=1)
    nir: str | None = Field(default=None, description="base64 of a NIR (HDF5) graph, instead of 'layers'", exclude=True)


# --- inputs -------------------------------------------------------------------------------------


class TensorInput(Strict):
    """Input currents given step by step: ``shape`` is ``[steps, (batch,) *features]``."""

    type: Literal["tensor"]
    shape: Shape
    data: TensorData = Field(description="nested lists of numbers, or a base64 tensor, of that shape")


class ConstantInput(Strict):
    """The same current every step; ``value`` is a number (then ``shape`` is required) or a
    per-feature nested list."""

    type: Literal["constant"]
    value: ParamValue = Field(description="a number, or per-feature nested lists")
    shape: Shape | None = Field(default=None, description="features per sample; required when value is a number")
    steps: PositiveInt | None = Field(default=None, description="the number of steps (or top-level steps)")


class PoissonInput(Strict):
    """Independent Poisson spike trains (1.0 on a spike step) at ``rates`` Hz, seeded by ``seed``."""

    type: Literal["poisson"]
    rates: ParamValue = Field(description="Hz: a number, or per-feature nested lists; at most 1/dt")
    shape: Shape | None = Field(default=None, description="features per sample; required when rates is a number")
    steps: PositiveInt | None = Field(default=None, description="the number of steps (or top-level steps)")


class SpikesInput(Strict):
    """Spike events: ``times`` (steps) and flat neuron ``indices`` into a sample of ``size``
    features (an int or a shape), with ``batch`` entries when the request is batched."""

    type: Literal["spikes"]
    times: list[NonNegativeInt] = Field(description="the step of each spike (integers, not seconds)")
    indices: list[NonNegativeInt] = Field(description="the flat feature index of each spike")
    batch: list[NonNegativeInt] | None = Field(default=None, description="the batch entry of each spike (batched requests)")
    size: Annotated[Shape, BeforeValidator(lambda v: [v] if isinstance(v, int) and not isinstance(v, bool) else v)] = Field(
        description="features per sample: an integer or a shape"
    )
    steps: PositiveInt | None = Field(default=None, description="the number of steps (or top-level steps); required")


Input = Annotated[TensorInput | ConstantInput | PoissonInput | SpikesInput, Field(discriminator="type")]
INPUT_TYPES = tuple(
    typing.get_args(member.model_fields["type"].annotation)[0] for member in typing.get_args(typing.get_args(Input)[0])
)


class Record(Strict):
    """What the result holds: spikes as events (``times`` in steps, ``senders``, ``batch``) and
    counts, and dense voltages."""

    spikes: list[Name] | None = Field(default=None, description="layers whose spikes to return; default: every spiking layer")
    voltages: list[Name] = Field(default_factory=list, description="layers whose membrane voltage to return densely")
    neurons: dict[Name, list[NonNegativeInt]] | None = Field(
        default=None, description="per layer in 'voltages': the flat neuron indices to keep (default all)"
    )
    max_spike_events: PositiveInt | None = Field(
        default=None,
        description="fail the job if the recorded layers produce more spike events than this (default: the server's limit)",
    )


Dt = Annotated[float, Field(ge=MIN_DT, le=1.0, allow_inf_nan=False, description="time step in seconds, 1e-6 to 1")]
_DT = TypeAdapter(Dt, config=ConfigDict(strict=True))


class JobRequest(Strict):
    dt: Dt = 0.001  # before network: a NIR network needs it
    network: Network = Field(description="the layers, in order (or a NIR file)")
    input: Input = Field(description="the input, time-major; it also gives the number of steps")
    steps: PositiveInt | None = Field(default=None, description="number of steps; may instead be given by the input")
    batch: PositiveInt | None = Field(default=None, description="batch size; omitted: no batch dimension")
    record: Record = Field(default=Record(), description="what the result holds")
    seed: Annotated[int, Field(ge=0, lt=2**63)] = Field(
        default=0, description="seeds weights drawn from an init spec and the Poisson input: the same seed, the same result"
    )

    @field_validator("network", mode="before")
    @classmethod
    def _network_from_nir(cls, network: Any, info: ValidationInfo) -> Any:
        """For direct ``model_validate`` calls; ``parse_request`` expands NIR before validating."""
        if not isinstance(network, dict) or network.get("nir") is None:
            return network
        limits = (info.context or {}).get("limits") or Limits()
        return network_from_nir(network, info.data.get("dt", 0.001), limits.max_input_bytes)


def network_from_nir(network: dict[str, Any], dt: float, max_bytes: int) -> dict[str, Any]:
    """``{"nir": "<base64>"}`` -> ``{"layers": [...]}``; ValueError saying what is wrong."""
    if "layers" in network:
        raise ValueError("give either 'layers' or 'nir', not both")
    from worker.nir_convert import NIRError, nir_bytes_to_network

    try:
        data = base64.b64decode(network["nir"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("nir: is not valid base64") from None
    try:
        return nir_bytes_to_network(data, dt, max_bytes)
    except NIRError as error:
        raise ValueError(f"nir: {error}") from None


# --- limits, errors and the plan ----------------------------------------------------------------


class Limits(BaseModel):
    """Upper bounds on what one job may ask for (see worker.cost for how each figure is computed).
    The defaults suit a workstation; the service sets its own from its settings."""

    max_steps: int = 1_000_000
    max_neurons: int = 20_000_000
    max_neuron_steps: int = 2 * 10**11
    max_batch: int = 4096
    max_layers: int = 128
    max_parameters: int = 200_000_000
    max_input_bytes: int = 512 * 2**20
    max_record_bytes: int = 2 * 2**30
    max_synaptic_ops: int = 10**15
    max_step_ops: int = 10**11
    max_chunk_bytes: int = 8 * 2**30
    max_spike_events: int = 100_000_000
    max_result_bytes: int = 8 * 2**30


@dataclass(frozen=True)
class FieldError:
    loc: Loc
    msg: str
    type: str = "value_error"

    @property
    def path(self) -> str:
        return format_loc(self.loc)

    @property
    def line(self) -> str:
        """``path: message``, or the message alone for the request as a whole."""
        return f"{self.path}: {self.msg}" if self.loc else self.msg


class InvalidRequest(ValueError):
    """A request that must not run; ``errors`` name the offending fields."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.line for e in errors))


def clean_loc(loc: Loc) -> Loc:
    """Pydantic puts union tags into error paths (``layers.1.lif.params``); drop them."""
    out: list[str | int] = []
    for part in loc:
        if part in LEAF_TAGS:
            continue
        after_layer = len(out) >= 2 and out[-2] == "layers" and isinstance(out[-1], int)
        if (after_layer and part in LAYER_TYPES) or (out == ["input"] and part in INPUT_TYPES):
            continue
        out.append(part)
    return tuple(out)


def format_loc(loc: Loc) -> str:
    """``("network", "layers", 1, "weight")`` -> ``network.layers[1].weight``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fail(loc: Loc, msg: str, kind: str = "value_error") -> InvalidRequest:
    return InvalidRequest([FieldError(tuple(loc), msg, kind)])


@dataclass
class LayerPlan:
    index: int
    name: str
    type: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # decoded inline weights and per-neuron params

    @property
    def is_neuron(self) -> bool:
        return self.type in NEURON_TYPES

    @property
    def spikes(self) -> bool:
        return self.is_neuron and self.type not in NON_SPIKING_TYPES

    @property
    def neurons(self) -> int:
        return math.prod(self.out_shape) if self.is_neuron else 0


@dataclass
class Plan:
    """What ``validate_request`` learned: everything the runner needs besides the request."""

    steps: int
    batch: int | None
    input_shape: tuple[int, ...]
    layers: list[LayerPlan]
    record_spikes: list[str]
    record_voltages: dict[str, np.ndarray | None]  # layer -> kept flat neuron indices (None: all)
    input_array: np.ndarray | None = None  # decoded tensor/constant/poisson values
    cost: "Cost | None" = None  # set by validate_request

    @property
    def batch_size(self) -> int:
        return self.batch or 1

    @property
    def neurons(self) -> int:
        return sum(layer.neurons for layer in self.layers)

    @property
    def neuron_steps(self) -> int:
        return self.neurons * self.batch_size * self.steps

    def layer(self, name: str) -> LayerPlan:
        return next(layer for layer in self.layers if layer.name == name)


# --- decoding helpers ---------------------------------------------------------------------------


def decode_tensor(data: TensorData | float, loc: Loc, max_bytes: int) -> np.ndarray:
    """Nested lists or base64 float32 -> a finite float32 array, or InvalidRequest at ``loc``."""
    if isinstance(data, Base64Tensor):
        count = math.prod(data.shape)
        if count * 4 > max_bytes:
            raise _fail((*loc, "shape"), f"{count} values exceed the limit of {max_bytes // 4} for one tensor", "limit")
        try:
            raw = base64.b64decode(data.base64, validate=True)
        except (binascii.Error, ValueError):
            raise _fail((*loc, "base64"), "is not valid base64") from None
        if len(raw) != count * 4:
            raise _fail((*loc, "base64"), f"decodes to {len(raw)} bytes, but shape {data.shape} of float32 needs {count * 4}")
        array = np.frombuffer(raw, dtype="<f4").reshape(data.shape).astype(np.float32)
    else:
        if _nested_count(data, max_bytes // 4 + 1, loc) * 4 > max_bytes:
            raise _fail(loc, f"has more than the limit of {max_bytes // 4} values for one tensor", "limit")
        try:
            array = np.asarray(data, dtype=np.float64)
        except (ValueError, TypeError):
            raise _fail(loc, "must be a number or a rectangular nested list of numbers") from None
        if array.dtype == object:
            raise _fail(loc, "must be a number or a rectangular nested list of numbers")
        _require_finite(array, loc)
        with np.errstate(over="ignore"):
            array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise _fail(loc, "has values beyond the float32 range (about 3.4e38)")
    _require_finite(array, loc)
    return array


def _require_finite(array: np.ndarray, loc: Loc) -> None:
    if not np.isfinite(array).all():
        bad = [int(i) for i in np.argwhere(~np.isfinite(array))[0]]
        raise _fail(loc, f"contains NaN or Inf (first at index {bad})")


def _nested_count(data: Any, stop: int, loc: Loc) -> int:
    """Number of leaves in a nested list, counting no further than ``stop`` (cheap size guard).
    Every leaf must be a JSON number (not a string or a boolean), nested at most MAX_DIMS deep."""
    count, stack = 0, [(data, 0)]
    while stack and count < stop:
        item, depth = stack.pop()
        if type(item) is list:
            if depth == MAX_DIMS:
                raise _fail(loc, f"is nested more than {MAX_DIMS} lists deep")
            stack.extend((child, depth + 1) for child in reversed(item))
        elif type(item) in (int, float):
            count += 1
        else:
            raise _fail(loc, f"must hold numbers only, found {json.dumps(item)[:40]}")
    return count


def _shape_str(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


# --- the semantic check -------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidRequest(
                [
                    FieldError(
                        (key,),
                        f"duplicate key {key!r} in one JSON object: which one was meant is ambiguous",
                        "json_duplicate_key",
                    )
                ]
            )
        seen[key] = value
    return seen


def loads_strict(raw: str | bytes | bytearray) -> Any:
    """``json.loads`` that refuses an object with the same key twice (Python keeps the last silently)."""
    try:
        return json.loads(raw, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        around = error.doc[max(0, error.pos - 30) : error.pos + 30]
        message = f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}, near {around!r}"
        raise InvalidRequest([FieldError((), message, "json_invalid")]) from None
    except UnicodeDecodeError as error:
        raise InvalidRequest(
            [FieldError((), f"not valid JSON: not UTF-8 text ({error.reason} at byte {error.start})", "json_invalid")]
        ) from None
    except RecursionError:
        raise InvalidRequest([FieldError((), "JSON nested too deeply", "json_invalid")]) from None


def expand_nir(data: Any, limits: Limits) -> Any:
    """The request with a NIR network (``{"nir": ...}``) replaced by its layers, so that what is
    stored and run is plain JSON: the file is read once, here, and never again by a worker."""
    if not isinstance(data, dict) or not isinstance(data.get("network"), dict) or data["network"].get("nir") is None:
        return data
    try:
        dt = _DT.validate_python(data.get("dt", 0.001))
    except ValidationError as error:
        raise InvalidRequest([FieldError(("dt",), e["msg"], e["type"]) for e in error.errors(include_url=False)]) from None
    try:
        network = network_from_nir(data["network"], dt, limits.max_input_bytes)
    except ValueError as error:
        raise _fail(("network", "nir"), str(error).removeprefix("nir: ")) from None
    return {**data, "network": network}


def parse_request(data: Any, limits: Limits | None = None) -> tuple[JobRequest, Plan]:
    """Structure and semantics in one call: the JSON (dict, str or bytes) -> (request, plan).

    Text is decoded with Python's ``json``, as FastAPI does, so the API and the worker read a
    stored request body identically.
    """
    return prepare_request(data, limits)[:2]


def prepare_request(data: Any, limits: Limits | None = None) -> tuple[JobRequest, Plan, Any]:
    """``parse_request`` that also returns the request as it will run: its JSON data with a NIR
    network expanded to layers (the same object as ``data`` when there was none)."""
    limits = limits or Limits()
    if isinstance(data, (str, bytes, bytearray)):
        data = loads_strict(data)
    data = expand_nir(data, limits)
    try:
        request = JobRequest.model_validate(data, context={"limits": limits})
    except ValidationError as error:
        raise InvalidRequest([_field_error(e, data) for e in error.errors(include_url=False)]) from None
    return request, validate_request(request, limits), data


def _field_error(error: Any, data: Any) -> FieldError:
    """A pydantic error as a FieldError; an unknown field's error lists the fields allowed there."""
    loc = clean_loc(error["loc"])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(loc[:-1], data)
        if allowed:
            message += f"; the fields here are {', '.join(allowed)}"
    return FieldError(loc, message, error["type"])


def _fields_at(loc: Loc, data: Any) -> list[str]:
    """The field names of the object at ``loc`` in the request ``data`` (empty if unknown)."""
    annotation: Any = JobRequest
    value = data
    for part in loc:
        annotation = _model_for(annotation, value)
        if isinstance(part, int):
            annotation = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else None
            value = value[part] if isinstance(value, list) and 0 <= part < len(value) else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
            annotation = annotation.model_fields[part].annotation
            value = value.get(part) if isinstance(value, dict) else None
        else:
            return []
    model = _model_for(annotation, value)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _model_for(annotation: Any, value: Any) -> Any:
    """``annotation`` without Annotated and Optional wrappers; of a union, the member ``value``
    was validated against (by its ``type`` field, or by the leaf-value tag)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    members = [_model_for(member, value) for member in typing.get_args(annotation) if member is not type(None)]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if isinstance(value, dict) and "type" in value:
        for model in models:
            if "type" in model.model_fields and typing.get_args(model.model_fields["type"].annotation) == (value["type"],):
                return model
    by_tag = {"init-spec": InitSpec, "base64-tensor": Base64Tensor}
    return by_tag.get(_value_kind(value)) or (members[0] if len(members) == 1 else None)


def validate_request(request: JobRequest, limits: Limits | None = None) -> Plan:
    limits = limits or Limits()
    layers = request.network.layers
    if len(layers) > limits.max_layers:
        raise _fail(("network", "layers"), f"has {len(layers)} layers, over the limit of {limits.max_layers}", "limit")
    if request.batch is not None and request.batch > limits.max_batch:
        raise _fail(("batch",), f"{request.batch} is over the limit of {limits.max_batch}", "limit")
    steps, batch, input_shape, input_array = _check_input(request, limits)
    if steps > limits.max_steps:
        loc = ("steps",) if request.steps is not None else ("input",)
        raise _fail(loc, f"{steps} steps are over the limit of {limits.max_steps}", "limit")

    plans = _infer_layers(request, input_shape, limits)
    plan = Plan(steps, batch, input_shape, plans, [], {}, input_array)
    if plan.neurons > limits.max_neurons:
        raise _fail(("network",), f"has {plan.neurons} neurons, over the limit of {limits.max_neurons}", "limit")
    if plan.neuron_steps > limits.max_neuron_steps:
        raise _fail(
            ("network",),
            f"{plan.neuron_steps} neuron-steps (neurons x batch x steps) are over the limit of {limits.max_neuron_steps}",
            "limit",
        )
    _resolve_record(request, plan)
    plan.cost = job_cost(request, plan, limits)
    check_cost(plan.cost, request, limits)
    return plan


def _check_input(request: JobRequest, limits: Limits) -> tuple[int, int | None, tuple[int, ...], np.ndarray | None]:
    source = request.input
    batch = request.batch
    lead = 2 if batch else 1  # leading [steps, (batch)] dimensions of a tensor input

    def resolve_steps(own: int | None) -> int:
        if own is not None and request.steps is not None and own != request.steps:
            raise _fail(("steps",), f"is {request.steps} but input.steps is {own}")
        steps = own if own is not None else request.steps
        if steps is None:
            raise _fail(("input", "steps"), "is required for this input type (or give top-level 'steps')", "missing")
        return steps

    if isinstance(source, TensorInput):
        shape = tuple(source.shape)
        if len(shape) <= lead:
            need = "[steps, batch, *features]" if batch else "[steps, *features]"
            raise _fail(("input", "shape"), f"must be {need}, got {_shape_str(shape)}")
        if batch and shape[1] != batch:
            raise _fail(("input", "shape"), f"has batch dimension {shape[1]}, but 'batch' is {batch}")
        if math.prod(shape) * 4 > limits.max_input_bytes:
            raise _fail(
                ("input", "shape"), f"{math.prod(shape) * 4} bytes of input exceed the limit of {limits.max_input_bytes}", "limit"
            )
        array = decode_tensor(source.data, ("input", "data"), limits.max_input_bytes)
        if array.shape != shape:
            raise _fail(("input", "data"), f"has shape {_shape_str(array.shape)}, but input.shape is {_shape_str(shape)}")
        steps = resolve_steps(shape[0])
        return steps, batch, shape[lead:], array

    if isinstance(source, SpikesInput):
        sample = tuple(source.size)
        if math.prod(sample) * 4 > limits.max_input_bytes:
            raise _fail(("input", "size"), f"{math.prod(sample)} features exceed the input limit", "limit")
        steps = resolve_steps(source.steps)
        if len(source.indices) != len(source.times):
            raise _fail(("input", "indices"), f"has {len(source.indices)} entries but times has {len(source.times)}")
        if source.batch is not None and len(source.batch) != len(source.times):
            raise _fail(("input", "batch"), f"has {len(source.batch)} entries but times has {len(source.times)}")
        if source.batch is not None and not batch:
            raise _fail(("input", "batch"), "is only allowed in a batched request (set top-level 'batch')")
        for name, values, bound in (
            ("times", source.times, steps),
            ("indices", source.indices, math.prod(sample)),
            ("batch", source.batch or [], request.batch or 1),
        ):
            if values and max(values) >= bound:
                position = int(np.argmax(np.asarray(values) >= bound))
                raise _fail(("input", name, position), f"{values[position]} is out of range (must be < {bound})")
        return steps, batch, sample, None

    # constant and poisson: a value per feature, or one value with an explicit shape
    key = "value" if isinstance(source, ConstantInput) else "rates"
    values = decode_tensor(getattr(source, key), ("input", key), limits.max_input_bytes)
    if source.shape is not None:
        sample = tuple(source.shape)
        if values.ndim and not _broadcasts(values.shape, sample):
            raise _fail(
                ("input", key),
                f"has shape {_shape_str(values.shape)}, which does not broadcast to input.shape {_shape_str(sample)}",
            )
    elif values.ndim:
        sample = values.shape
    else:
        raise _fail(("input", "shape"), f"is required when '{key}' is a single number", "missing")
    if math.prod(sample) * 4 > limits.max_input_bytes:
        raise _fail(("input", "shape"), f"{math.prod(sample)} features exceed the input limit", "limit")
    if isinstance(source, PoissonInput):
        if (values < 0).any():
            raise _fail(("input", "rates"), "must not be negative")
        if (values * request.dt > 1).any():
            raise _fail(("input", "rates"), f"exceed 1/dt = {1 / request.dt:g} Hz, at most one spike per step")
    steps = resolve_steps(source.steps)
    return steps, batch, sample, np.broadcast_to(values, sample).astype(np.float32)


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target), strict=False))


def _infer_layers(request: JobRequest, input_shape: tuple[int, ...], limits: Limits) -> list[LayerPlan]:
    shape = input_shape
    previous = "the input"
    plans: list[LayerPlan] = []
    names: dict[str, int] = {}
    parameters = 0
    for index, layer in enumerate(request.network.layers):
        loc: Loc = ("network", "layers", index)
        name = layer.name or f"{layer.type}_{index}"
        if name in names:
            raise _fail((*loc, "name"), f"duplicate layer name {name!r} (also network.layers[{names[name]}])")
        names[name] = index
        plan = LayerPlan(index, name, layer.type, shape, shape)
        got = f"{previous} gives shape {_shape_str(shape)}"

        if isinstance(layer, (LinearLayer, LIFRecurrentLayer)):
            if not shape or shape[-1] != layer.in_features:
                raise _fail((*loc, "in_features"), f"is {layer.in_features}, but {got}")
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
                raise _fail(loc, f"conv2d needs [channels, height, width] per sample, but {got}")
            if shape[0] != layer.in_channels:
                raise _fail((*loc, "in_channels"), f"is {layer.in_channels}, but {got}")
            kh, kw = layer.kernel_size
            if any(p >= k for p, k in zip(layer.padding, layer.kernel_size, strict=True)):
                raise _fail((*loc, "padding"), f"must be less than the kernel size {[kh, kw]} in each dimension")
            plan.out_shape = (layer.out_channels, *_pool_out(shape[1:], (kh, kw), layer.stride, layer.padding, loc))
            weights = {"weight": (layer.out_channels, layer.in_channels, kh, kw), "bias": (layer.out_channels,)}
        elif isinstance(layer, Conv1dLayer):
            if len(shape) != 2:
                raise _fail(loc, f"conv1d needs [channels, length] per sample, but {got}")
            if shape[0] != layer.in_channels:
                raise _fail((*loc, "in_channels"), f"is {layer.in_channels}, but {got}")
            if layer.padding >= layer.kernel_size:
                raise _fail((*loc, "padding"), f"must be less than the kernel size {layer.kernel_size}")
            length = (shape[1] + 2 * layer.padding - layer.kernel_size) // layer.stride + 1
            if length < 1:
                raise _fail(
                    (*loc, "kernel_size"),
                    f"{layer.kernel_size} does not fit the input of length {shape[1]} (padding {layer.padding})",
                )
            plan.out_shape = (layer.out_channels, length)
            weights = {"weight": (layer.out_channels, layer.in_channels, layer.kernel_size), "bias": (layer.out_channels,)}
        elif isinstance(layer, AvgPool2dLayer):
            if len(shape) != 3:
                raise _fail(loc, f"avgpool2d needs [channels, height, width] per sample, but {got}")
            kernel = layer.kernel_size
            stride = layer.stride if layer.stride is not None else kernel
            padding = layer.padding
            if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
                raise _fail((*loc, "padding"), f"must be at most half the kernel size {list(kernel)}")
            plan.out_shape = (shape[0], *_pool_out(shape[1:], kernel, stride, padding, loc))
            weights = {}
        elif isinstance(layer, FlattenLayer):
            plan.out_shape = (math.prod(shape),)
            weights = {}
        elif isinstance(layer, (ScaleLayer, ThresholdLayer)):
            key = "weight" if isinstance(layer, ScaleLayer) else "threshold"
            values = decode_tensor(getattr(layer, key), (*loc, key), limits.max_input_bytes)
            if values.ndim and not _broadcasts(values.shape, shape):
                raise _fail((*loc, key), f"has shape {_shape_str(values.shape)}, not broadcastable to {_shape_str(shape)}")
            plan.arrays[key] = values
            weights = {}
        else:
            weights = {}
        for key, expected in weights.items():
            value = getattr(layer, key, None)
            if isinstance(value, (list, Base64Tensor)):
                array = decode_tensor(value, (*loc, key), limits.max_input_bytes)
                if array.shape != expected:
                    raise _fail((*loc, key), f"has shape {_shape_str(array.shape)}, expected {_shape_str(expected)}")
                plan.arrays[key] = array
            if isinstance(value, InitSpec) and value.init == "uniform" and value.low > value.high:
                raise _fail((*loc, key, "low"), "must not exceed high")
            if value is not False:
                parameters += math.prod(expected)
        if parameters > limits.max_parameters:
            raise _fail(loc, f"the network has over {limits.max_parameters} weights, the limit", "limit")
        if hasattr(layer, "params"):
            _check_params(layer, plan, loc, limits)
        plans.append(plan)
        shape = plan.out_shape
        previous = f"layer {name!r} ({layer.type})"
    return plans


def _pool_out(
    size: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], loc: Loc
) -> tuple[int, int]:
    out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding, strict=True))
    if min(out) < 1:
        raise _fail(
            (*loc, "kernel_size"), f"{list(kernel)} does not fit the input of size {list(size)} (padding {list(padding)})"
        )
    return out  # type: ignore[return-value]


def _check_params(layer: Any, plan: LayerPlan, loc: Loc, limits: Limits) -> None:
    for key, value in layer.params.model_dump(exclude_none=True).items():
        if isinstance(value, str):
            continue
        array = decode_tensor(value, (*loc, "params", key), limits.max_input_bytes)
        if array.ndim and not _broadcasts(array.shape, plan.out_shape):
            raise _fail(
                (*loc, "params", key),
                f"has shape {_shape_str(array.shape)}, not broadcastable to the layer shape {_shape_str(plan.out_shape)}",
            )
        if key in POSITIVE_PARAMS and (array <= 0).any():
            raise _fail((*loc, "params", key), "must be positive")
        plan.arrays[f"params.{key}"] = array


def _resolve_record(request: JobRequest, plan: Plan) -> None:
    by_name = {layer.name: layer for layer in plan.layers}
    record = request.record
    if record.spikes is None:
        plan.record_spikes = [layer.name for layer in plan.layers if layer.spikes]
    else:
        for position, name in enumerate(record.spikes):
            loc = ("record", "spikes", position)
            if name not in by_name:
                raise _fail(loc, f"unknown layer {name!r}; layers are {', '.join(by_name)}")
            if not by_name[name].spikes:
                raise _fail(loc, f"layer {name!r} ({by_name[name].type}) does not spike")
            if name in record.spikes[:position]:
                raise _fail(loc, f"layer {name!r} is listed twice")
        plan.record_spikes = list(record.spikes)
    for position, name in enumerate(record.voltages):
        loc = ("record", "voltages", position)
        if name not in by_name:
            raise _fail(loc, f"unknown layer {name!r}; layers are {', '.join(by_name)}")
        if not by_name[name].is_neuron:
            raise _fail(loc, f"layer {name!r} ({by_name[name].type}) has no membrane voltage")
        if name in plan.record_voltages:
            raise _fail(loc, f"layer {name!r} is listed twice")
        neurons = None if record.neurons is None else record.neurons.get(name)
        if neurons is not None:
            size = by_name[name].neurons
            bad = [i for i in neurons if i >= size]
            if bad:
                raise _fail(("record", "neurons", name), f"index {bad[0]} is out of range for {size} neurons")
            plan.record_voltages[name] = np.asarray(neurons, dtype=np.int64)
        else:
            plan.record_voltages[name] = None
    for name in record.neurons or {}:
        if name not in plan.record_voltages:
            raise _fail(("record", "neurons", name), "names a layer that is not in record.voltages")
