"""The job request's JSON structure: one pydantic model tree (types, ranges, unknown fields).

``worker.simulation.plan`` completes it with the checks that need more than one field at a time.
This module imports numpy and pydantic, never torch.
"""

import base64
import binascii
import typing
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationInfo,
    create_model,
    field_validator,
)

from worker.registry import (
    MODELS,
    PARAMETERS,
    PLASTICITY_PARAMETERS,
    PLASTICITY_RULES,
    SYNAPSE_MODELS,
    SYNAPSE_PARAMETERS,
    NeuronModel,
    Parameter,
    parameter_types,
)
from worker.simulation.limits import Limits
from worker.simulation.nir_import import ImportOptions, NIRError, nir_to_network, read_graph

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

# Kept equal to worker.engine's presets by tests/worker/simulation/test_plan.py (this module must not import torch).
IZHIKEVICH_PRESET_NAMES = (
    "tonic_spiking", "phasic_spiking", "tonic_bursting", "phasic_bursting", "mixed_mode",
    "spike_frequency_adaptation", "class_1_exc", "class_2_exc", "spike_latency",
    "subthreshold_oscillation", "resonator", "integrator", "rebound_spike", "rebound_burst",
    "threshold_variability", "bistability", "dap", "accommodation", "inhibition_induced_spiking",
    "inhibition_induced_bursting",
)  # fmt: skip


class Strict(BaseModel):
    """Unknown fields are errors, and values are never coerced: ``"3"`` or ``true`` is not an integer.
    A validated request is immutable, so default parameter sets are shared, not deep-copied per request."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, frozen=True)


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
LEAF_TAGS = ("flag", "number", "nested-list", "base64-tensor", "init-spec", "range")


def value_kind(value: Any) -> str | None:
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
    NestedList | Base64Value, Discriminator(value_kind, custom_error_type="tensor", custom_error_message=TENSOR_HELP)
]
WeightData = Annotated[
    NestedList | Base64Value | InitValue, Discriminator(value_kind, custom_error_type="tensor", custom_error_message=WEIGHT_HELP)
]
BiasData = Annotated[
    Annotated[bool, Tag("flag")] | NestedList | Base64Value | InitValue,
    Discriminator(value_kind, custom_error_type="tensor", custom_error_message="must be true, false or " + WEIGHT_HELP[8:]),
]
InitialValue = Annotated[
    Annotated[Finite, Tag("number")] | NestedList | Base64Value | InitValue,
    Discriminator(value_kind, custom_error_type="tensor", custom_error_message="must be a number or " + WEIGHT_HELP[8:]),
]
ParamValue = Annotated[
    Annotated[Finite, Tag("number")] | NestedList,
    Discriminator(
        value_kind, custom_error_type="number", custom_error_message="must be a finite number or a nested list of numbers"
    ),
]


def _pair(value: Any) -> Any:
    """An integer means the same value for height and width; a JSON list becomes a tuple."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    return tuple(value) if isinstance(value, list) else value


# The schema says what a request may hold (an integer or a pair), not only the pair it becomes.
Pair = Annotated[
    tuple[PositiveInt, PositiveInt],
    BeforeValidator(_pair, json_schema_input_type=PositiveInt | tuple[PositiveInt, PositiveInt]),
    Field(description="an integer or [height, width]"),
]
NonNegativePair = Annotated[
    tuple[NonNegativeInt, NonNegativeInt],
    BeforeValidator(_pair, json_schema_input_type=NonNegativeInt | tuple[NonNegativeInt, NonNegativeInt]),
    Field(description="an integer or [height, width]"),
]


def type_names(union: Any) -> tuple[str, ...]:
    """The ``type`` values of a union of models (``Annotated`` or bare)."""
    if typing.get_origin(union) is Annotated:
        union = typing.get_args(union)[0]
    return tuple(typing.get_args(member.model_fields["type"].annotation)[0] for member in typing.get_args(union))


def _as_shape(value: Any) -> Any:
    return [value] if isinstance(value, int) and not isinstance(value, bool) else value


# A number of features or neurons: an integer or a shape (the schema says both).
Size = Annotated[Shape, BeforeValidator(_as_shape, json_schema_input_type=PositiveInt | list[PositiveInt])]


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


# --- neuron layers: one per model of the registry ---------------------------------------------------


def _params_model(model: NeuronModel) -> type[BaseModel]:
    """A model's ``params``: each of its parameters optional (omitted: the engine's default), a
    number or per-neuron nested lists, or one of a string parameter's choices."""
    fields: dict[str, Any] = {}
    for name in model.parameters:
        parameter = PARAMETERS[name]
        kind: Any = ParamValue if parameter.numeric else Literal[parameter.choices]
        fields[name] = (kind | None, Field(default=None, description=parameter.meaning))
    name = model.parameter_type.removesuffix("Parameters") + "Params"
    return create_model(name, __base__=Strict, __doc__="Omitted parameters take the engine's defaults.", **fields)


PARAMS = {model.parameter_type: _params_model(model) for model in parameter_types().values()}


def _layer_model(model: NeuronModel) -> type[BaseModel]:
    params = PARAMS[model.parameter_type]
    kind: Any = (Literal[model.type], ...)
    return create_model(f"{model.name}Layer", __base__=LayerBase, __doc__=model.layer_doc, type=kind, params=(params, params()))


IZHIKEVICH_PARAMS, LIF_PARAMS = PARAMS[MODELS["izhikevich"].parameter_type], PARAMS[MODELS["lif_recurrent"].parameter_type]


class IzhikevichLayer(LayerBase):
    """Izhikevich neurons, from one of the 20 classic behaviours of Izhikevich (2004)."""

    type: Literal["izhikevich"]
    preset: Literal[IZHIKEVICH_PRESET_NAMES] = Field(default="tonic_spiking", description="the behaviour")  # type: ignore[valid-type]
    params: IZHIKEVICH_PARAMS = Field(default=IZHIKEVICH_PARAMS(), description="overrides of the preset's parameters")  # type: ignore[valid-type]
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
    params: LIF_PARAMS = LIF_PARAMS()  # type: ignore[valid-type]


# Layers with fields of their own are written out above; every other model's is made from its entry.
SPECIAL_LAYERS: dict[str, Any] = {
    typing.get_args(layer.model_fields["type"].annotation)[0]: layer for layer in (IzhikevichLayer, LIFRecurrentLayer)
}
NEURON_LAYERS = {name: SPECIAL_LAYERS.get(name) or _layer_model(model) for name, model in MODELS.items()}
if TYPE_CHECKING:
    NeuronLayer = Any
else:
    NeuronLayer = Union[tuple(NEURON_LAYERS.values())]  # noqa: UP007  a union made from the registry
Layer = Annotated[
    LinearLayer | Conv1dLayer | Conv2dLayer | FlattenLayer | AvgPool2dLayer | ScaleLayer | ThresholdLayer | NeuronLayer,
    Field(discriminator="type"),
]
LAYER_TYPES = type_names(Layer)
NEURON_TYPES = tuple(MODELS)
NON_SPIKING_TYPES = tuple(name for name, model in MODELS.items() if not model.spikes)
POSITIVE_PARAMS = tuple(name for name, parameter in PARAMETERS.items() if parameter.positive)
NOT_NEGATIVE_PARAMS = tuple(name for name, parameter in PARAMETERS.items() if parameter.not_negative)


class NIRImport(Strict):
    """How to read what NIR leaves open, for a network given as a NIR file (see [NIR networks](#nir-networks))."""

    if_input: Literal["continuous", "per_step"] = Field(
        default="continuous",
        description='IF nodes: "continuous" as NIR defines them (dv/dt = r I: r I dt per step); "per_step" adds r I per '
        "step, as Sinabs and Norse's importer do",
    )
    reset: Literal["value", "subtract"] = Field(
        default="value",
        description='LIF, CubaLIF and IF nodes after a spike: "value" sets v to v_reset; "subtract" takes v_threshold - '
        "v_reset off and keeps the overshoot (Sinabs's and snnTorch's default)",
    )


class Network(Strict):
    """The layers in order; or ``{"nir": "<base64 of a NIR file>"}``, converted to layers (or
    a graph) with the request's ``dt`` as [NIR networks](#nir-networks) says."""

    layers: list[Layer] = Field(min_length=1)
    nir: str | None = Field(default=None, description="base64 of a NIR (HDF5) graph, instead of 'layers'", exclude=True)
    nir_import: NIRImport | None = Field(default=None, description="with 'nir': how to read it", exclude=True)


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
    """Independent Poisson spike trains (1.0 on a spike step) at ``rates`` Hz, seeded by ``seed``;
    with ``sources`` > 1 each feature counts the spikes of that many trains."""

    type: Literal["poisson"]
    rates: ParamValue = Field(description="Hz: a number, or per-feature nested lists; at most 1/dt")
    shape: Shape | None = Field(default=None, description="features per sample; required when rates is a number")
    steps: PositiveInt | None = Field(default=None, description="the number of steps (or top-level steps)")
    sources: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1,
        description="independent trains per feature, each at 'rates': the input is their spike count in each step "
        "(a binomial draw; Brian2's PoissonInput); a count above 255 in one step must be improbable (below 2^-32: "
        "a mean of up to about 165 spikes per step)",
    )


class SpikesInput(Strict):
    """Spike events: ``times`` (steps) and flat neuron ``indices`` into a sample of ``size``
    features (an int or a shape), with ``batch`` entries when the request is batched."""

    type: Literal["spikes"]
    times: list[NonNegativeInt] = Field(description="the step of each spike (integers, not seconds)")
    indices: list[NonNegativeInt] = Field(description="the flat feature index of each spike")
    batch: list[NonNegativeInt] | None = Field(default=None, description="the batch entry of each spike (batched requests)")
    size: Size = Field(description="features per sample: an integer or a shape")
    steps: PositiveInt | None = Field(default=None, description="the number of steps (or top-level steps); required")


Input = Annotated[TensorInput | ConstantInput | PoissonInput | SpikesInput, Field(discriminator="type")]
INPUT_TYPES = type_names(Input)


# --- graphs -------------------------------------------------------------------------------------
# A network as named nodes (inputs and neuron populations) and edges (projections) between them:
# several inputs, several populations, recurrence with delays, sparse connectivity.


class NodeFields(Strict):
    name: Name = Field(description="the node's name, used by edges and in the result")


class PopulationFields(NodeFields):
    size: Size = Field(description="the neurons: an integer or a shape (edges see them flattened, in row-major order)")
    v0: InitialValue | None = Field(
        default=None,
        description="the initial membrane voltage: a number, per-neuron nested lists, base64, or {init, ...} drawn "
        "from seed; default the model's resting value",
    )


class IzhikevichPopulation(PopulationFields, IzhikevichLayer):  # type: ignore[misc]  # a required name
    """A population of Izhikevich neurons (``v0``, when given, replaces the preset's)."""


def _population_model(model: NeuronModel) -> type[BaseModel]:
    bases = (PopulationFields, NEURON_LAYERS[model.type])
    return create_model(f"{model.name}Population", __base__=bases, __doc__=model.population_doc)


POPULATIONS: dict[str, Any] = {
    name: IzhikevichPopulation if name == "izhikevich" else _population_model(model)
    for name, model in MODELS.items()
    if model.population
}


class TensorSource(NodeFields, TensorInput):
    """Input values given step by step: ``shape`` is ``[steps, (batch,) *features]``."""


class ConstantSource(NodeFields, ConstantInput):
    """The same value every step."""


class PoissonSource(NodeFields, PoissonInput):
    """Poisson spike trains (or, with ``sources``, counts of several trains per feature)."""


class SpikesSource(NodeFields, SpikesInput):
    """Spike events given as lists."""


class LinearNode(NodeFields, LinearLayer):  # type: ignore[misc]  # a required name
    """A dense layer on the node's input (what its identity edges bring, added up)."""


class Conv1dNode(NodeFields, Conv1dLayer):  # type: ignore[misc]  # a required name
    """A 1-d convolution on the node's input."""


class Conv2dNode(NodeFields, Conv2dLayer):  # type: ignore[misc]  # a required name
    """A 2-d convolution on the node's input."""


class AvgPool2dNode(NodeFields, AvgPool2dLayer):  # type: ignore[misc]  # a required name
    """Average pooling of the node's input."""


class FlattenNode(NodeFields, FlattenLayer):  # type: ignore[misc]  # a required name
    """The node's input flattened."""


class ScaleNode(NodeFields, ScaleLayer):  # type: ignore[misc]  # a required name
    """The node's input multiplied by a factor per feature."""


class ThresholdNode(NodeFields, ThresholdLayer):  # type: ignore[misc]  # a required name
    """Stateless spikes where the node's input exceeds a threshold."""


if TYPE_CHECKING:
    Population = Any
else:
    Population = Union[tuple(POPULATIONS.values())]  # noqa: UP007  a union made from the registry
Source = TensorSource | ConstantSource | PoissonSource | SpikesSource
LayerNode = LinearNode | Conv1dNode | Conv2dNode | AvgPool2dNode | FlattenNode | ScaleNode | ThresholdNode
Node = Annotated[Population | Source | LayerNode, Field(discriminator="type")]
POPULATION_TYPES = type_names(Population)


class DelayRange(Strict):
    """Delays drawn per synapse from the seed, uniformly among the integers ``low`` to ``high``."""

    low: NonNegativeInt = Field(description="the shortest delay, steps")
    high: NonNegativeInt = Field(description="the longest delay, steps (inclusive)")


Delay = Annotated[
    Annotated[NonNegativeInt, Tag("number")] | Annotated[DelayRange, Tag("range")],
    Discriminator(
        lambda v: "range" if isinstance(v, (dict, DelayRange)) else "number",
        custom_error_type="delay",
        custom_error_message="must be a number of steps or {low, high}",
    ),
    Field(description="steps from a spike to its arrival: a number, or {low, high} drawn per synapse; 0: the same step"),
]
# one discriminated union, not a union of one with a model: a bad value then gets one message
PerSynapseValue = Annotated[
    Annotated[Finite, Tag("number")] | NestedList | InitValue,
    Discriminator(
        value_kind, custom_error_type="number", custom_error_message="must be a number, a nested list of numbers or {init, ...}"
    ),
]
SynapseWeight = Annotated[
    Annotated[Finite, Tag("number")] | InitValue,
    Discriminator(value_kind, custom_error_type="number", custom_error_message="must be a number or {init, ...}"),
    Field(description="one weight for every synapse, or {init, ...}: drawn per synapse from seed"),
]


# --- synapses and plasticity: one request class per entry of the registry --------------------------


def _scalar_field(parameter: Parameter) -> tuple[Any, Any]:
    """A synapse's or plasticity rule's parameter: one number (or one of its choices), its default."""
    if not parameter.numeric:
        return Literal[parameter.choices], Field(default=parameter.default, description=parameter.meaning)
    if parameter.positive:
        kind: Any = Annotated[float, Field(gt=0, allow_inf_nan=False)]
    elif parameter.not_negative:
        kind = Annotated[float, Field(ge=0, allow_inf_nan=False)]
    else:
        kind = Finite
    return kind, Field(default=parameter.default, description=parameter.meaning)


class SynapseFields(Strict):
    initial: InitialValue | None = Field(
        default=None,
        description="the channel's value at step 0 in each target neuron: a number, per-neuron values or {init, ...} "
        "drawn from seed; default 0 (edges sharing the channel give it once)",
    )


def _synapse_model(model: Any) -> type[BaseModel]:
    fields: dict[str, Any] = {"type": (Literal[model.type], ...)}
    fields |= {name: _scalar_field(SYNAPSE_PARAMETERS[name]) for name in model.parameters}
    return create_model(f"{model.name}Synapse", __base__=SynapseFields if model.channel else Strict, __doc__=model.doc, **fields)


SYNAPSE_CLASSES = {name: _synapse_model(model) for name, model in SYNAPSE_MODELS.items()}
DeltaSynapse = SYNAPSE_CLASSES["delta"]
if TYPE_CHECKING:
    Synapse = Any
else:
    Synapse = Annotated[Union[tuple(SYNAPSE_CLASSES.values())], Field(discriminator="type")]  # noqa: UP007  from the registry
PLASTICITY_CLASSES = {
    name: create_model(  # type: ignore[call-overload]
        f"{rule.name}Rule",
        __base__=Strict,
        __doc__=rule.doc,
        type=(Literal[rule.type], ...),
        **{parameter: _scalar_field(PLASTICITY_PARAMETERS[parameter]) for parameter in rule.parameters},
    )
    for name, rule in PLASTICITY_RULES.items()
}
if TYPE_CHECKING:
    Plasticity = Any
else:
    Plasticity = Annotated[Union[tuple(PLASTICITY_CLASSES.values())], Field(discriminator="type")]  # noqa: UP007


class EdgeBase(Strict):
    source: Name = Field(alias="from", description="the presynaptic node")
    target: Name = Field(alias="to", description="the postsynaptic population")
    name: str | None = Field(default=None, max_length=100, description="a label for messages; defaults to 'from->to'")
    delay: Delay = 0
    synapse: Synapse = Field(
        default=DeltaSynapse(type="delta"),
        description="how its spikes act on the target: delta (added to the target's input), or a channel of the target "
        "(a population of lif_channels): an exponential current or conductance",
    )
    plasticity: Plasticity | None = Field(
        default=None, description="a rule that changes the edge's weights during the run (its final weights are in the result)"
    )


class IdentityEdge(EdgeBase):
    """The source's output as it is: into a population of as many neurons, or into a layer node
    (whose input shape it sets)."""

    type: Literal["identity"]


class DenseEdge(EdgeBase):
    """Every node output to every target through a weight matrix (``y = W x``, PyTorch's Linear)."""

    type: Literal["dense"]
    weight: WeightData | None = Field(
        default=None, description="(target neurons, source neurons); omitted: PyTorch's Linear init from seed"
    )


class OneToOneEdge(EdgeBase):
    """Source neuron i to target neuron i (the two the same size)."""

    type: Literal["one_to_one"]
    weight: PerSynapseValue = Field(default=1.0, description="a number, per-synapse nested lists, or {init, ...}")


class RuleEdge(EdgeBase):
    weight: SynapseWeight = 1.0
    autapses: bool = Field(default=True, description="within one population: may a neuron connect to itself")


class FixedInDegreeEdge(RuleEdge):
    """Every target neuron draws exactly ``k`` sources from the seed."""

    type: Literal["fixed_in_degree"]
    k: PositiveInt = Field(description="inputs per target neuron")
    multapses: bool = Field(default=False, description="may a source be drawn twice for one target")


class FixedOutDegreeEdge(RuleEdge):
    """Every source neuron draws exactly ``k`` targets from the seed."""

    type: Literal["fixed_out_degree"]
    k: PositiveInt = Field(description="targets per source neuron")
    multapses: bool = Field(default=False, description="may a target be drawn twice for one source")


class PairwiseBernoulliEdge(RuleEdge):
    """Each (source, target) pair is connected with probability ``p``, independently."""

    type: Literal["pairwise_bernoulli"]
    p: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(description="the probability of a synapse")


class Base64Indices(Strict):
    """A little-endian int32 array: ``{"dtype": "int32", "shape": [n], "base64": "..."}``."""

    dtype: Literal["int32"]
    shape: Annotated[list[NonNegativeInt], Field(min_length=1, max_length=1)]
    base64: str


Indices = Annotated[
    Annotated[list[NonNegativeInt], Tag("nested-list")] | Annotated[Base64Indices, Tag("base64-tensor")],
    Discriminator(
        value_kind, custom_error_type="indices", custom_error_message="must be a list of integers or {dtype, shape, base64}"
    ),
]


class SparseEdge(EdgeBase):
    """Synapses listed one by one: ``pre[s] -> post[s]`` with weight ``weight[s]`` and delay ``delay[s]``."""

    type: Literal["sparse"]
    pre: Indices = Field(description="the source neuron of each synapse (flat index)")
    post: Indices = Field(description="the target neuron of each synapse (flat index)")
    weight: InitialValue = Field(
        default=1.0, description="one weight, one per synapse (a list or base64 float32), or {init, ...}"
    )
    delay: Annotated[
        Annotated[NonNegativeInt, Tag("number")]
        | Annotated[list[NonNegativeInt], Tag("nested-list")]
        | Annotated[Base64Indices, Tag("base64-tensor")],
        Discriminator(value_kind, custom_error_type="delay", custom_error_message="must be a number of steps or one per synapse"),
    ] = Field(default=0, description="steps: one delay, or one per synapse (a list or base64 int32)")  # type: ignore[assignment]


Edge = Annotated[
    IdentityEdge | DenseEdge | OneToOneEdge | FixedInDegreeEdge | FixedOutDegreeEdge | PairwiseBernoulliEdge | SparseEdge,
    Field(discriminator="type"),
]
EDGE_TYPES = type_names(Edge)
NODE_TYPES = type_names(Node)


class GraphNetwork(Strict):
    """Named nodes (inputs, neuron populations and layers) and edges (projections) from node to
    node. The edges into a node add up; a cycle needs a delay of at least one step. A request's
    top-level ``input``, when it has one, is the node named ``input``."""

    nodes: list[Node] = Field(min_length=1, description="inputs, neuron populations and layers")
    edges: list[Edge] = Field(default_factory=list, description="projections; those into one population add up")


def _network_kind(value: Any) -> str:
    return "graph" if isinstance(value, GraphNetwork) or (isinstance(value, dict) and "nodes" in value) else "layers"


AnyNetwork = Annotated[Annotated[Network, Tag("layers")] | Annotated[GraphNetwork, Tag("graph")], Discriminator(_network_kind)]
NETWORK_TAGS = ("layers", "graph")


class WeightRecord(Strict):
    """When to snapshot an edge's weights: every ``every`` steps (after steps every - 1, 2 every - 1, ...),
    or after each of ``steps``."""

    every: PositiveInt | None = Field(default=None, description="a snapshot after every this many steps")
    steps: list[NonNegativeInt] | None = Field(default=None, max_length=100_000, description="snapshots after these steps")


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
    weights: dict[str, "WeightRecord"] = Field(
        default_factory=dict,
        description="plastic edges (by name: the edge's 'name', or 'from->to') whose weights to snapshot during the run; "
        "every plastic edge's final weights are in the result anyway",
    )
    live: list[Name] = Field(
        default_factory=list,
        description="recorded layers whose spikes the job's event stream carries chunk by chunk while it runs "
        "(at most 10,000 events per layer and chunk; above that every k-th event, and the event says k)",
    )


Dt = Annotated[float, Field(ge=MIN_DT, le=1.0, allow_inf_nan=False, description="time step in seconds, 1e-6 to 1")]
DT_ADAPTER = TypeAdapter(Dt, config=ConfigDict(strict=True))


class JobRequest(Strict):
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="a label for job lists and the viewer (up to 100 printable characters); it does not change the run",
    )
    dt: Dt = 0.001  # before network: a NIR network needs it
    network: AnyNetwork = Field(description="the layers in order, a graph of nodes and edges, or a NIR file")
    input: Input | None = Field(
        default=None,
        description="the input of a network of layers, time-major; it may also give the number of steps "
        "(a graph's inputs are among its nodes)",
    )
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


def nir_graph_of(network: dict[str, Any], max_bytes: int) -> tuple[Any, ImportOptions]:
    """The NIR graph of ``{"nir": "<base64>", "nir_import": {...}}`` and how to import it;
    ValueError saying what is wrong (``nir_import`` is validated by the caller)."""
    if "layers" in network:
        raise ValueError("give either 'layers' or 'nir', not both")
    try:
        data = base64.b64decode(network["nir"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("nir: is not valid base64") from None
    options = NIRImport.model_validate(network.get("nir_import") or {})
    try:
        return read_graph(data, max_bytes), ImportOptions(options.if_input, options.reset)
    except NIRError as error:
        raise ValueError(f"nir: {error}") from None


def network_from_nir(network: dict[str, Any], dt: float, max_bytes: int) -> dict[str, Any]:
    """``{"nir": ...}`` -> ``{"layers": [...]}`` (or a graph's nodes and edges); ValueError
    saying what is wrong."""
    graph, options = nir_graph_of(network, max_bytes)
    try:
        return nir_to_network(graph, dt, options)[0]
    except NIRError as error:
        raise ValueError(f"nir: {error}") from None
