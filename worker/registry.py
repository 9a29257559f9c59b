"""The model registry: one entry per neuron model, synapse model and plasticity rule, and
everything else derives from them.

An entry says what the request format, the checks, the cost model, the builder, the reference
docs, the kernels and the viewer need to know of a model: its request ``type`` and the names of
its request classes, its parameters (their meanings, units and defaults are in ``PARAMETERS``,
a model may override a default), its state, the engine's classes that run it, whether one fused
kernel runs its whole sequence (and that kernel's id), whether sweep points may differ in its
parameters within one batch, whether it spikes, and what the viewer shows of its voltage.

A graph's edge names its synapse (``SYNAPSE_MODELS``: how its spikes act on the target) and may
name a plasticity rule (``PLASTICITY_RULES``); their parameters, with meanings, units and
defaults, are in ``SYNAPSE_PARAMETERS`` and ``PLASTICITY_PARAMETERS``, and the request's classes
for them are made from these entries.

Adding a model is one entry here, its step function and sequence module in ``worker.engine``
(parameters come from ``worker.engine.parameter_types``, generated from this file), and a kernel
if it has one. ``python -m worker.registry`` writes the generated files (the engine's parameter
types and the kernels' model ids for C); ``tests/test_registry.py`` checks they are current.

This module imports nothing but the standard library: the API, which never loads torch, reads it
as the engine does.
"""

import json
import pathlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

THRESHOLD_METHODS = ("heaviside", "super", "fast_sigmoid", "triangle", "tanh", "atan")
RESET_METHODS = ("value", "subtract")
INPUT_MODES = ("current", "delta")  # how a box LIF takes its input (its "synapse" parameter)
INTEGRATIONS = ("euler", "exact")


@dataclass(frozen=True)
class Parameter:
    """A neuron parameter: what it means (with its unit), its default, and its allowed values."""

    meaning: str
    default: float | str
    choices: tuple[str, ...] = ()  # a string parameter's values
    positive: bool = False  # must be > 0 (an inverse time constant)
    not_negative: bool = False  # must be >= 0
    training: bool = False  # only the surrogate gradient reads it

    @property
    def numeric(self) -> bool:
        return not self.choices


PARAMETERS: dict[str, Parameter] = {
    "tau_syn_inv": Parameter("inverse synaptic time constant, 1/s (200: 5 ms)", 200.0, positive=True),
    "tau_mem_inv": Parameter("inverse membrane time constant, 1/s (100: 10 ms)", 100.0, positive=True),
    "tau_adapt_inv": Parameter("inverse time constant of the threshold adaptation, 1/s", 1.0 / 0.8, positive=True),
    "tau_ada_inv": Parameter("inverse time constant of the adaptation current, 1/s", 2.0, positive=True),
    "tau_inv": Parameter("inverse time constant of the Izhikevich equations, 1/s", 250.0, positive=True),
    "v_leak": Parameter("resting potential", 0.0),
    "v_th": Parameter("spike threshold", 1.0),
    "v_reset": Parameter("potential after a spike", 0.0),
    "rho_reset": Parameter("refractory steps after a spike (held at v_reset; input in them is lost)", 5.0, not_negative=True),
    "synapse": Parameter(
        '"current" drives the membrane with the input as a current; "delta" adds the input to the membrane at once',
        "current",
        choices=INPUT_MODES,
    ),
    "integration": Parameter(
        '"euler": forward Euler, as the other models; "exact": the exact update of the membrane and its current '
        "channels over a step (not with conductance channels)",
        "euler",
        choices=INTEGRATIONS,
    ),
    "reset_method": Parameter(
        '"value" sets v to v_reset; "subtract" removes v_th - v_reset and keeps the overshoot', "value", choices=RESET_METHODS
    ),
    "method": Parameter(
        "surrogate gradient: " + ", ".join(f'"{m}"' for m in THRESHOLD_METHODS) + " (training only)",
        "super",
        choices=THRESHOLD_METHODS,
        training=True,
    ),
    "alpha": Parameter("the surrogate gradient's sharpness (training only)", 100.0, training=True),
    "beta": Parameter("threshold increase per spike", 1.8),
    "adaptation_current": Parameter("adaptation current's coupling to the membrane", 4.0),
    "adaptation_spike": Parameter("adaptation current's jump per spike", 0.02),
    "delta_T": Parameter("sharpness of the exponential upswing", 0.5, positive=True),
    "a": Parameter("Izhikevich a: time scale of the recovery variable u", 0.02),
    "b": Parameter("Izhikevich b: sensitivity of u to v", 0.2),
    "c": Parameter("Izhikevich c: v after a spike", -65.0),
    "d": Parameter("Izhikevich d: u's jump after a spike", 6.0),
    "sq": Parameter("Izhikevich coefficient of v^2", 0.04),
    "mn": Parameter("Izhikevich coefficient of v", 5.0),
    "bias": Parameter("Izhikevich constant term", 140.0),
}

# Parameter lists that several models share, in the engine's order (Norse's, where Norse has the model).
LIF_PARAMETERS = ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "method", "alpha", "reset_method")
BOX_PARAMETERS = ("tau_mem_inv", "v_leak", "v_th", "v_reset", "method", "alpha", "reset_method", "synapse")


@dataclass(frozen=True)
class NeuronModel:
    """One neuron model (see the module's docstring)."""

    type: str  # in requests: {"type": "lif"}
    name: str  # its request classes: <name>Layer, <name>Population, <name>Params; its engine's <name>Parameters
    layer_doc: str
    population_doc: str
    parameters: tuple[str, ...]  # in the order of the engine's parameter NamedTuple
    state: tuple[str, ...]  # the engine's state fields
    engine: str  # the sequence module in worker.engine
    parameter_type: str  # its parameter NamedTuple (several models may share one)
    defaults: Mapping[str, float | str] = field(default_factory=dict)  # where this model's default differs
    extends: tuple[str, str] | None = None  # (model, attribute): its parameters are that model's and more
    kernel: str | None = None  # the fused kernel that runs its whole sequence (worker.engine.fused), if any
    fused: bool = False  # one kernel call runs its whole sequence (its own kernel, or another's)
    fused_with_delta: bool | None = None  # with synapse "delta", if it has that parameter
    batches: bool = True  # built from its parameters alone: sweep points may differ in them within a batch
    spikes: bool = True
    population: bool = True  # a graph may have populations of it
    voltage_unit: str = ""  # the viewer's axis: "" is Norse's dimensionless units
    nir: str | None = None  # the NIR node a layer of it exports to (worker.simulation.nir_export), if any
    channels: bool = False  # in a graph, its input arrives through the synaptic channels of the edges into it
    layer_example: Mapping[str, object] = field(default_factory=dict)
    population_example: Mapping[str, object] = field(default_factory=dict)

    def default(self, parameter: str) -> float | str:
        return self.defaults.get(parameter, PARAMETERS[parameter].default)

    @property
    def threshold(self) -> float | None:
        """The default threshold, which the viewer marks (None: it does not spike)."""
        return float(self.default("v_th")) if self.spikes and "v_th" in self.parameters else None

    def runs_fused(self, synapse: str = "current") -> bool:
        return self.fused_with_delta if synapse == "delta" and self.fused_with_delta is not None else self.fused


MODELS: dict[str, NeuronModel] = {
    model.type: model
    for model in (
        NeuronModel(
            "lif", "LIF",
            "Current-based leaky integrate-and-fire neurons (Norse's ``LIF``): the input jumps into a synaptic current that "
            "decays and drives the membrane.",
            "A population of LIF neurons.",
            LIF_PARAMETERS, ("v", "i"), "LIF", "LIFParameters", kernel="lif", fused=True, nir="CubaLIF",
            layer_example={"type": "lif", "params": {"tau_syn_inv": 100.0, "v_th": [1.0, 1.2]}},
            population_example={"name": "exc", "type": "lif", "size": 100, "params": {"tau_mem_inv": 50.0}},
        ),
        NeuronModel(
            "lif_refrac", "LIFRefrac",
            "LIF neurons with an absolute refractory period (Norse's ``LIFRefrac``): for ``rho_reset`` steps after a spike "
            "the membrane is held at its reset value and input to it is lost, while the synaptic current goes on "
            "integrating.",
            "A population of LIF neurons with a refractory period.",
            (*LIF_PARAMETERS, "rho_reset"), ("v", "i", "rho"), "LIFRefrac", "LIFRefracParameters", extends=("lif", "lif"),
            layer_example={"type": "lif_refrac", "params": {"rho_reset": 20.0}},
            population_example={"name": "exc", "type": "lif_refrac", "size": [10, 10], "params": {"rho_reset": 20.0}},
        ),
        NeuronModel(
            "lifbox", "LIFBox",
            "Leaky integrate-and-fire neurons without a synaptic current: the input drives the membrane.",
            "A population of box LIF neurons (no synaptic current).",
            BOX_PARAMETERS, ("v",), "LIFBox", "LIFBoxParameters", kernel="lifbox", fused=True, fused_with_delta=False, nir="LIF",
            layer_example={"type": "lifbox", "params": {"tau_mem_inv": 50.0, "reset_method": "subtract"}},
            population_example={"name": "exc", "type": "lifbox", "size": 100, "v0": 0.5},
        ),
        NeuronModel(
            "lifbox_refrac", "LIFBoxRefrac",
            "Box LIF neurons (no synaptic current) with an absolute refractory period of ``rho_reset`` steps; with "
            '``"synapse": "delta"`` the neuron of Brunel\'s (2000) network and NEST\'s ``iaf_psc_delta``: input arriving '
            "while refractory is lost.",
            "A population of box LIF neurons with a refractory period (Brunel's neuron with delta synapses).",
            (*BOX_PARAMETERS, "rho_reset"), ("v", "rho"), "LIFBoxRefrac", "LIFBoxRefracParameters", extends=("lifbox", "box"),
            fused=True, fused_with_delta=True,
            layer_example={"type": "lifbox_refrac", "params": {"tau_mem_inv": 50.0, "v_th": 20.0, "v_reset": 10.0,
                                                               "synapse": "delta", "rho_reset": 20.0}},
            population_example={"name": "exc", "type": "lifbox_refrac", "size": 100, "params": {"synapse": "delta"},
                                "v0": {"init": "uniform", "low": 0.0, "high": 1.0}},
        ),
        NeuronModel(
            "li", "LI",
            "Leaky integrators (a read-out): LIF dynamics without threshold; record their voltages.",
            "A population of leaky integrators (a read-out).",
            ("tau_syn_inv", "tau_mem_inv", "v_leak"), ("v", "i"), "LI", "LIParameters", kernel="li", fused=True,
            spikes=False, nir="CubaLI",
            layer_example={"type": "li", "name": "readout"},
            population_example={"name": "readout", "type": "li", "size": 2},
        ),
        NeuronModel(
            "iaf", "IAF",
            "Integrate-and-fire neurons without leak: the membrane adds up its input.",
            "A population of integrate-and-fire neurons.",
            ("v_th", "v_reset", "method", "alpha", "reset_method"), ("v",), "IAF", "IAFParameters", kernel="iaf", fused=True,
            nir="IF",
            layer_example={"type": "iaf", "params": {"v_th": 2.0}},
            population_example={"name": "counter", "type": "iaf", "size": 10},
        ),
        NeuronModel(
            "alif", "ALIF",
            "LIF neurons with an adaptive threshold (LSNN): each spike raises the threshold by ``beta``, which decays back "
            "with ``tau_adapt_inv``.",
            "A population of adaptive-threshold LIF neurons.",
            ("tau_syn_inv", "tau_mem_inv", "tau_adapt_inv", "v_leak", "v_th", "v_reset", "beta", "method", "alpha",
             "reset_method"),
            ("v", "i", "b"), "ALIF", "ALIFParameters", kernel="alif", fused=True,
            layer_example={"type": "alif", "params": {"tau_adapt_inv": 5.0, "beta": 0.5}},
            population_example={"name": "adaptive", "type": "alif", "size": 10, "params": {"beta": 0.5}},
        ),
        NeuronModel(
            "lifadex", "LIFAdEx",
            "Adaptive exponential LIF neurons (Norse's ``LIFAdEx``).",
            "A population of adaptive exponential LIF neurons.",
            ("adaptation_current", "adaptation_spike", "delta_T", "tau_ada_inv", *LIF_PARAMETERS),
            ("v", "i", "a"), "LIFAdEx", "LIFAdExParameters",
            layer_example={"type": "lifadex", "params": {"adaptation_current": 2.0}},
            population_example={"name": "adex", "type": "lifadex", "size": 10},
        ),
        NeuronModel(
            "izhikevich", "Izhikevich",
            "Izhikevich neurons, from one of the 20 classic behaviours of Izhikevich (2004).",
            "A population of Izhikevich neurons (``v0``, when given, replaces the preset's).",
            ("a", "b", "c", "d", "sq", "mn", "bias", "v_th", "tau_inv", "method", "alpha"),
            ("v", "u"), "Izhikevich", "IzhikevichParameters", defaults={"v_th": 30.0}, batches=False, voltage_unit="mV",
            layer_example={"type": "izhikevich", "preset": "tonic_bursting", "params": {"d": 4.0}},
            population_example={"name": "bursting", "type": "izhikevich", "size": 10, "preset": "tonic_bursting"},
        ),
        NeuronModel(
            "lif_channels", "LIFChannels",
            "LIF neurons with a refractory period whose input arrives through synaptic channels (NEST's ``iaf_psc_exp`` "
            "and ``iaf_cond_exp``, Brette et al.'s CUBA and COBA neurons): in a graph each distinct synapse of the edges "
            "into the population (an exponential current or conductance with its own time constant) is a channel of its "
            "own, and delta edges make the membrane jump. As a layer its input makes the membrane jump.",
            "A population of LIF neurons fed by synaptic channels, one per distinct synapse of the edges into it.",
            ("tau_mem_inv", "v_leak", "v_th", "v_reset", "rho_reset", "integration"), ("v", "rho", "g"), "LIFChannels",
            "LIFChannelsParameters", defaults={"tau_mem_inv": 50.0, "rho_reset": 0.0}, batches=False, channels=True,
            fused=True,  # a graph of them runs in the network kernel (worker.engine.network), one call per chunk
            layer_example={"type": "lif_channels", "params": {"v_th": 0.5}},
            population_example={"name": "E", "type": "lif_channels", "size": 3200,
                                "params": {"tau_mem_inv": 50.0, "v_leak": -49.0, "v_th": -50.0, "v_reset": -60.0,
                                           "rho_reset": 49.0, "integration": "exact"},
                                "v0": {"init": "uniform", "low": -60.0, "high": -50.0}},
        ),
        NeuronModel(
            "lif_recurrent", "LIFRecurrent",
            "LIF neurons with input weights and recurrent weights among themselves (Norse's ``LIFRecurrent``): last step's "
            "spikes jump into this step's current.",
            "",
            LIF_PARAMETERS, ("v", "i"), "LIFRecurrent", "LIFParameters", batches=False, population=False,
            layer_example={"type": "lif_recurrent", "in_features": 2, "out_features": 10,
                           "recurrent_weights": {"init": "uniform", "low": -0.1, "high": 0.1}},
        ),
    )
}  # fmt: skip

NEURON_TYPES = tuple(MODELS)
# The fused kernels, by the ids the C and Triton kernels know them by.
KERNELS: dict[str, NeuronModel] = {model.kernel: model for model in MODELS.values() if model.kernel}
KERNEL_IDS = {name: index for index, name in enumerate(KERNELS)}
SURROGATE_IDS = {name: index for index, name in enumerate(THRESHOLD_METHODS)}  # the kernels' numbering of the methods


def parameter_types() -> dict[str, NeuronModel]:
    """Each engine parameter NamedTuple, with the first model that uses it."""
    types: dict[str, NeuronModel] = {}
    for model in MODELS.values():
        types.setdefault(model.parameter_type, model)
    return types


def viewer_models() -> dict[str, dict[str, object]]:
    """What the viewer shows of each model (served with the request schema)."""
    return {model.type: {"threshold": model.threshold, "voltage_unit": model.voltage_unit} for model in MODELS.values()}


# --- synapses and plasticity ------------------------------------------------------------------------

SYNAPSE_PARAMETERS: dict[str, Parameter] = {
    "tau_syn": Parameter("the channel's decay time constant, s", 0.005, positive=True),
    "e_rev": Parameter("the reversal potential, in the target's voltage unit", 0.0),
}


@dataclass(frozen=True)
class SynapseModel:
    """How an edge's spikes act on its target. Every synapse but ``delta`` is a channel: a variable
    per target neuron that each spike increments by the synapse's weight and that decays with
    ``tau_syn``; edges into one population with the same synapse (type and parameters) share it."""

    type: str  # in requests: {"synapse": {"type": "current_exp", ...}}
    name: str  # its request class: <name>Synapse
    doc: str
    parameters: tuple[str, ...] = ()  # from SYNAPSE_PARAMETERS; with the type, they tell channels apart
    conductance: bool = False  # the channel drives the membrane by g * (e_rev - v), not by g itself

    @property
    def channel(self) -> bool:
        return bool(self.parameters)


SYNAPSE_MODELS: dict[str, SynapseModel] = {
    model.type: model
    for model in (
        SynapseModel(
            "delta", "Delta",
            "Each spike adds its weight to the target's input of the step it arrives in: a population of ``lif_channels`` "
            "(or a box LIF with ``synapse: delta``) jumps by it, any other model takes it as its input.",
        ),
        SynapseModel(
            "current_exp", "CurrentExp",
            "An exponentially decaying current (NEST's ``iaf_psc_exp``): each spike adds its weight to the channel's "
            "current g, which decays with ``tau_syn`` and drives the membrane as g (in the target's voltage unit, "
            "resistance times current).",
            ("tau_syn",),
        ),
        SynapseModel(
            "conductance_exp", "ConductanceExp",
            "An exponentially decaying conductance (NEST's ``iaf_cond_exp``): each spike adds its weight to the "
            "channel's conductance g (in units of the leak conductance), which decays with ``tau_syn`` and drives the "
            "membrane as g * (e_rev - v).",
            ("tau_syn", "e_rev"),
            conductance=True,
        ),
    )
}  # fmt: skip
CHANNEL_SYNAPSES = tuple(name for name, model in SYNAPSE_MODELS.items() if model.channel)

PLASTICITY_PARAMETERS: dict[str, Parameter] = {
    "tau_pre": Parameter("the presynaptic trace's time constant, s", 0.02, positive=True),
    "tau_post": Parameter("the postsynaptic trace's time constant, s", 0.02, positive=True),
    "a_pre": Parameter("the presynaptic trace's jump per spike: the weight change of a pre-before-post pair at no lag "
                       "(potentiation when positive)", 0.01),
    "a_post": Parameter("the postsynaptic trace's jump per spike: the weight change of a post-before-pre pair at no lag "
                        "(depression when negative)", -0.0105),
    "w_min": Parameter("the smallest weight", 0.0),
    "w_max": Parameter("the largest weight", 1.0),
    "bounds": Parameter(
        '"hard": additive changes, clipped to [w_min, w_max]; "soft": multiplicative, potentiation scaled by '
        "(w_max - w) / (w_max - w_min) and depression by (w - w_min) / (w_max - w_min)",
        "hard",
        choices=("hard", "soft"),
    ),
    "pairing": Parameter(
        '"all_to_all": every earlier spike of the other side counts (traces add up); "nearest": only the latest '
        "(a spike sets its trace instead of adding to it)",
        "all_to_all",
        choices=("all_to_all", "nearest"),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class PlasticityRule:
    """A rule that changes an edge's weights during a run."""

    type: str  # in requests: {"plasticity": {"type": "stdp", ...}}
    name: str  # its request class: <name>Rule
    doc: str
    parameters: tuple[str, ...]  # from PLASTICITY_PARAMETERS


PLASTICITY_RULES: dict[str, PlasticityRule] = {
    rule.type: rule
    for rule in (
        PlasticityRule(
            "stdp", "STDP",
            "Pair-based spike-timing-dependent plasticity with exponential traces (Song, Miller & Abbott 2000; "
            "Brian2's and NEST's ``stdp_synapse``): a presynaptic spike, when it arrives, raises the presynaptic "
            "trace and changes the weight by the postsynaptic trace; a postsynaptic spike raises the postsynaptic "
            "trace and changes the weight of every synapse into the neuron by its presynaptic trace.",
            tuple(PLASTICITY_PARAMETERS),
        ),
    )
}  # fmt: skip


# --- the generated files --------------------------------------------------------------------------

ROOT = pathlib.Path(__file__).parent
GENERATED_NOTE = "Generated by `python -m worker.registry` from worker/registry.py: edit that, not this."


def _value(value: float | str) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(float(value))


def parameter_types_source() -> str:
    """``worker/engine/parameter_types.py``: the engine's parameter NamedTuples."""
    lines = [
        '"""The parameter NamedTuples of the engine\'s models.',
        "",
        GENERATED_NOTE,
        "",
        "Time constants are inverse (1/s), as in Norse; any numeric field may be a per-neuron tensor or an",
        "``nn.Parameter``; building one whose ``tau_*_inv`` fields are not positive and finite raises ValueError.",
        '"""',
        "",
        "from typing import Any, NamedTuple",
        "",
        "import torch",
        "",
        "from worker.engine.parameters import positive_time_constants, rebuilt",
        "",
        "Param = torch.Tensor | float",
    ]
    for type_name, model in parameter_types().items():
        lines += ["", "", "@positive_time_constants", f"class {type_name}(NamedTuple):"]
        lines += [f'    """The parameters of ``{model.engine}``."""', ""]
        for name in model.parameters:
            kind = "Param" if PARAMETERS[name].numeric else "str"
            lines.append(f"    {name}: {kind} = {_value(model.default(name))}")
        if model.extends is not None:
            base_type, attribute = MODELS[model.extends[0]].parameter_type, model.extends[1]
            lines += [
                "",
                "    @classmethod",
                f'    def from_{attribute}(cls, {attribute}: "{base_type}", **fields: Any) -> "{type_name}":',
                f'        """These parameters from ``{attribute}``\'s, and the fields of their own."""',
                f"        return cls(**{attribute}._asdict(), **fields)",
                "",
                "    @property",
                f'    def {attribute}(self) -> "{base_type}":',
                f'        """The ``{base_type}`` among these (checked when these were built)."""',
                f"        return rebuilt({base_type}, self._asdict())",
            ]
    for rule in PLASTICITY_RULES.values():
        lines += ["", "", f"class {rule.name}Parameters(NamedTuple):"]
        lines += [f'    """The parameters of the ``{rule.type}`` rule."""', ""]
        for name in rule.parameters:
            parameter = PLASTICITY_PARAMETERS[name]
            lines.append(f"    {name}: {'float' if parameter.numeric else 'str'} = {_value(parameter.default)}")
    return "\n".join(lines) + "\n"


def kernel_header_source() -> str:
    """``worker/engine/fused/models.h``: the fused kernels' model ids and what each model has."""
    lines = ["/* The fused kernels' models.", f" * {GENERATED_NOTE} */", "#pragma once", ""]
    ids = ", ".join(f"MODEL_{name.upper()} = {index}" for name, index in KERNEL_IDS.items())
    lines.append(f"enum {{ {ids} }};")

    def macro(name: str, test: str, chosen: list[str]) -> str:
        body = " || ".join(f"(model) == MODEL_{kernel.upper()}" for kernel in chosen) or "0"
        return f"#define {name}(model) ({body})  /* {test} */"

    methods = ", ".join(f"SUR_{name.upper()} = {index}" for name, index in SURROGATE_IDS.items())
    lines.append(f"enum {{ {methods} }};  /* the surrogate gradients */")
    lines.append("#define FOR_EACH_MODEL(X) " + " ".join(f"X({name}, MODEL_{name.upper()})" for name in KERNEL_IDS))
    lines += [
        macro("HAS_CURRENT", "a synaptic current i", [k for k, m in KERNELS.items() if "i" in m.state]),
        macro("SPIKING", "a threshold and spikes", [k for k, m in KERNELS.items() if m.spikes]),
        macro("ADAPTIVE", "an adaptive threshold b", [k for k, m in KERNELS.items() if "b" in m.state]),
        macro("LEAKY", "a membrane time constant", [k for k, m in KERNELS.items() if "tau_mem_inv" in m.parameters]),
    ]
    return "\n".join(lines) + "\n"


GENERATED = {
    ROOT / "engine" / "parameter_types.py": parameter_types_source,
    ROOT / "engine" / "fused" / "models.h": kernel_header_source,
}


def main() -> None:
    for path, source in GENERATED.items():
        path.write_text(source())
        print(f"wrote {path.relative_to(ROOT.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()


__all__ = [
    "CHANNEL_SYNAPSES", "INPUT_MODES", "INTEGRATIONS", "KERNELS", "KERNEL_IDS", "MODELS", "NEURON_TYPES", "PARAMETERS",
    "PLASTICITY_PARAMETERS", "PLASTICITY_RULES", "RESET_METHODS", "SURROGATE_IDS", "SYNAPSE_MODELS", "SYNAPSE_PARAMETERS",
    "THRESHOLD_METHODS",
    "NeuronModel", "Parameter", "PlasticityRule", "SynapseModel", "parameter_types", "viewer_models",
]  # fmt: skip
