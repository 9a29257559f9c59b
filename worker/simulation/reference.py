"""The request reference, ``docs/requests.md``, written from the request models themselves.

    python -m worker.simulation.reference > docs/requests.md

``tests/worker/simulation/test_reference.py`` checks that the file is what this writes and that
every example in it is a valid request, so the reference cannot drift from the code.
"""

import json
import sys
from typing import Any

from pydantic import BaseModel

from worker.registry import MODELS, PARAMETERS
from worker.simulation import request as schema
from worker.simulation.nir_import import NIR_MAPPING

# The models, in the order the reference presents them.
SECTIONS: list[tuple[str, str, list[type[BaseModel]]]] = [
    ("The request", "A job request is one JSON object:", [schema.JobRequest]),
    ("The network", "", [schema.Network]),
    (
        "Layers",
        "Each layer has a ``type`` and an optional ``name``; shapes are per sample (time and batch "
        "dimensions excluded) and are inferred from the input, layer by layer. Neuron layers take "
        "``params`` (next section).",
        [
            schema.LinearLayer,
            schema.Conv1dLayer,
            schema.Conv2dLayer,
            schema.AvgPool2dLayer,
            schema.FlattenLayer,
            schema.ScaleLayer,
            schema.ThresholdLayer,
            *schema.NEURON_LAYERS.values(),
        ],
    ),
    (
        "Inputs",
        "Time-major: the input gives every step's values for every sample.",
        [
            schema.TensorInput,
            schema.ConstantInput,
            schema.PoissonInput,
            schema.SpikesInput,
        ],
    ),
    (
        "Graphs",
        "A network may instead be a graph: named ``nodes`` (inputs, neuron populations and layers) and "
        "``edges`` (projections) from a node to a population or a layer node. The edges into a node add up, "
        "each spike arriving ``delay`` steps after it was fired; a cycle needs an edge with a delay of at "
        "least one step. Its inputs are nodes, and a top-level ``input``, if the request has one, is the node "
        "named ``input``; ``steps`` comes from the top level or from an input.",
        [schema.GraphNetwork],
    ),
    (
        "Graph nodes",
        "A population is a neuron layer's fields (``type``, ``params``) with a ``name``, a ``size`` and an "
        "optional initial voltage ``v0``; an input node is an input's fields with a ``name``, and each draws "
        "its Poisson spikes from its own stream of the request's seed; a layer node is a stateless layer's "
        "fields with a ``name``, applied to what its ``identity`` edges bring (their sources' outputs, of one "
        "shape, added up).",
        [
            *schema.POPULATIONS.values(),
            schema.TensorSource,
            schema.ConstantSource,
            schema.PoissonSource,
            schema.SpikesSource,
            schema.LinearNode,
            schema.Conv1dNode,
            schema.Conv2dNode,
            schema.AvgPool2dNode,
            schema.FlattenNode,
            schema.ScaleNode,
            schema.ThresholdNode,
        ],
    ),
    (
        "Edges",
        "Every edge has ``from``, ``to``, a ``type``, an optional ``name`` and a ``delay``. Neurons are "
        "numbered in row-major order of their node's shape. Connectivity drawn from the seed (the degree "
        "rules, Bernoulli), weights given as ``{init, ...}`` and delays given as ``{low, high}`` are drawn per "
        "synapse; all edges but ``dense`` and ``one_to_one`` carry spikes, so their source must spike.",
        [
            schema.IdentityEdge,
            schema.DenseEdge,
            schema.OneToOneEdge,
            schema.FixedInDegreeEdge,
            schema.FixedOutDegreeEdge,
            schema.PairwiseBernoulliEdge,
            schema.SparseEdge,
            schema.DelayRange,
            schema.Base64Indices,
        ],
    ),
    (
        "Synapses and plasticity",
        "An edge's ``synapse`` says how its spikes act on the target; its ``plasticity``, if any, changes its "
        "weights as the run goes (the equations, units and the order of updates follow the classes).",
        [*schema.SYNAPSE_CLASSES.values(), *schema.PLASTICITY_CLASSES.values(), schema.WeightRecord],
    ),
    (
        "NIR networks",
        'A network may be given as a NIR file, ``{"nir": "<base64 of the .nir file>"}``, with an optional '
        "``nir_import``; the server converts it with the request's ``dt`` (once, before the job is queued) and "
        "validates the result like any network. NIR's nodes are continuous-time equations; each step's input "
        "value is the sample of the node's input signal ``S(t)`` over that step (a spike: a pulse of height 1 "
        "lasting one step), as the NIR tools of Norse and snnTorch read it.",
        [schema.NIRImport],
    ),
    ("What to record", "", [schema.Record]),
    ("Tensors and weights", "", [schema.Base64Tensor, schema.InitSpec]),
]

# Each model's parameters, as the request format takes them.
PARAMETER_MODELS: dict[str, type[BaseModel]] = {name: schema.PARAMS[model.parameter_type] for name, model in MODELS.items()}

# One example per model: each is checked, inside a request, by the test.
EXAMPLES: dict[str, Any] = {
    "JobRequest": {
        "network": {"layers": [
            {"type": "linear", "name": "fc", "in_features": 2, "out_features": 3, "weight": {"init": "normal", "std": 0.5}},
            {"type": "lif", "name": "out", "params": {"tau_mem_inv": 50.0}},
        ]},
        "input": {"type": "poisson", "rates": [40.0, 80.0], "steps": 1000},
        "dt": 0.001,
        "record": {"voltages": ["out"]},
        "seed": 7,
    },
    "Network": {"layers": [{"type": "lif"}]},
    "LinearLayer": {"type": "linear", "in_features": 2, "out_features": 3, "weight": [[0.5, 0.0], [0.0, 0.5], [0.25, 0.25]],
                    "bias": False},
    "Conv1dLayer": {"type": "conv1d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
    "Conv2dLayer": {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": [3, 3], "stride": 2},
    "AvgPool2dLayer": {"type": "avgpool2d", "kernel_size": 2},
    "FlattenLayer": {"type": "flatten"},
    "ScaleLayer": {"type": "scale", "weight": [1.0, 2.0]},
    "ThresholdLayer": {"type": "threshold", "threshold": 0.5},
    "TensorInput": {"type": "tensor", "shape": [3, 2], "data": [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]},
    "ConstantInput": {"type": "constant", "value": 1.5, "shape": [2], "steps": 100},
    "PoissonInput": {"type": "poisson", "rates": 20.0, "shape": [2], "steps": 1000},
    "SpikesInput": {"type": "spikes", "times": [0, 3, 3], "indices": [1, 0, 1], "size": 2, "steps": 10},
    "GraphNetwork": {
        "nodes": [
            {"name": "drive", "type": "poisson", "rates": 25.0, "sources": 80, "shape": [100]},
            {"name": "E", "type": "lifbox_refrac", "size": 100, "v0": {"init": "uniform", "low": 0.0, "high": 20.0},
             "params": {"tau_mem_inv": 50.0, "v_th": 20.0, "v_reset": 10.0, "synapse": "delta", "rho_reset": 20.0}},
        ],
        "edges": [
            {"from": "drive", "to": "E", "type": "one_to_one", "weight": 0.1},
            {"from": "E", "to": "E", "type": "fixed_in_degree", "k": 10, "weight": 0.1, "delay": 15},
        ],
    },
    "TensorSource": {"name": "stimulus", "type": "tensor", "shape": [3, 2], "data": [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]},
    "ConstantSource": {"name": "bias", "type": "constant", "value": 1.5, "shape": [2]},
    "PoissonSource": {"name": "external", "type": "poisson", "rates": 25.0, "sources": 800, "shape": [2]},
    "SpikesSource": {"name": "cue", "type": "spikes", "times": [0, 3, 3], "indices": [1, 0, 1], "size": 2},
    "LinearNode": {"name": "fc", "type": "linear", "in_features": 2, "out_features": 2, "bias": False},
    "Conv1dNode": {"name": "conv", "type": "conv1d", "in_channels": 1, "out_channels": 2, "kernel_size": 1},
    "Conv2dNode": {"name": "conv", "type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 1},
    "AvgPool2dNode": {"name": "pool", "type": "avgpool2d", "kernel_size": 1},
    "FlattenNode": {"name": "flat", "type": "flatten"},
    "ScaleNode": {"name": "gain", "type": "scale", "weight": [2.0, 0.5]},
    "ThresholdNode": {"name": "spikes", "type": "threshold", "threshold": 0.5},
    "IdentityEdge": {"from": "in", "to": "P", "type": "identity", "delay": 1},
    "DenseEdge": {"from": "in", "to": "P", "type": "dense", "weight": {"init": "normal", "std": 0.5}},
    "OneToOneEdge": {"from": "in", "to": "P", "type": "one_to_one", "weight": [0.5, 1.0]},
    "FixedInDegreeEdge": {"from": "P", "to": "P", "type": "fixed_in_degree", "k": 1, "weight": -0.5, "delay": 2,
                          "autapses": False},
    "FixedOutDegreeEdge": {"from": "in", "to": "P", "type": "fixed_out_degree", "k": 2,
                           "weight": {"init": "uniform", "low": 0.1, "high": 0.3}},
    "PairwiseBernoulliEdge": {"from": "in", "to": "P", "type": "pairwise_bernoulli", "p": 0.5, "delay": {"low": 1, "high": 5}},
    "SparseEdge": {"from": "in", "to": "P", "type": "sparse", "pre": [0, 1], "post": [1, 0], "weight": [0.5, 0.25],
                   "delay": [1, 3]},
    "DelayRange": {"low": 1, "high": 20},
    "Base64Indices": {"dtype": "int32", "shape": [2], "base64": "AAAAAAEAAAA="},
    "NIRImport": {"if_input": "per_step", "reset": "subtract"},
    "Record": {"spikes": ["out"], "voltages": ["out"], "neurons": {"out": [0, 2]}, "max_spike_events": 100000, "live": ["out"]},
    "DeltaSynapse": {"type": "delta"},
    "CurrentExpSynapse": {"type": "current_exp", "tau_syn": 0.005},
    "ConductanceExpSynapse": {"type": "conductance_exp", "tau_syn": 0.005, "e_rev": 0.0,
                              "initial": {"init": "normal", "mean": 4.0, "std": 1.5}},
    "STDPRule": {"type": "stdp", "tau_pre": 0.02, "tau_post": 0.02, "a_pre": 0.0001, "a_post": -0.000105, "w_min": 0.0,
                 "w_max": 0.01},
    "WeightRecord": {"every": 10000},
    "Base64Tensor": {"dtype": "float32", "shape": [1, 2], "base64": "AAAAPwAAgD8="},
    "InitSpec": {"init": "uniform", "low": -0.5, "high": 0.5},
}  # fmt: skip
EXAMPLES |= {schema.NEURON_LAYERS[name].__name__: dict(model.layer_example) for name, model in MODELS.items()}
EXAMPLES |= {population.__name__: dict(MODELS[name].population_example) for name, population in schema.POPULATIONS.items()}

# What each layer example needs around it to be a valid request (the input, and a layer after it).
EXAMPLE_CONTEXT: dict[str, dict[str, Any]] = {
    "Conv1dLayer": {"input": {"type": "constant", "value": 1.0, "shape": [1, 8], "steps": 5}},
    "Conv2dLayer": {"input": {"type": "constant", "value": 1.0, "shape": [1, 8, 8], "steps": 5}},
    "AvgPool2dLayer": {"input": {"type": "constant", "value": 1.0, "shape": [1, 8, 8], "steps": 5}},
    "FlattenLayer": {"input": {"type": "constant", "value": 1.0, "shape": [1, 4, 4], "steps": 5}},
}
DEFAULT_CONTEXT = {"input": {"type": "constant", "value": [1.0, 2.0], "steps": 5}}


def example_request(model: str) -> dict[str, Any]:
    """The model's example as a whole request (what the test validates)."""
    example = EXAMPLES[model]
    if model == "JobRequest":
        return example
    if model == "Network":
        return {"network": example, **DEFAULT_CONTEXT}
    if model.endswith("Layer"):
        return {"network": {"layers": [example]}, **EXAMPLE_CONTEXT.get(model, DEFAULT_CONTEXT)}
    if model.endswith("Input"):
        return {"network": {"layers": [{"type": "lif"}]}, "input": example}
    if model == "Record":
        return {"network": {"layers": [{"type": "linear", "in_features": 2, "out_features": 3}, {"type": "lif", "name": "out"}]},
                **DEFAULT_CONTEXT, "record": example}  # fmt: skip
    if model == "NIRImport":
        return {
            "network": {"nir": _nir_example(), "nir_import": example},
            "input": {"type": "constant", "value": [2.0], "steps": 5},
        }
    if model == "GraphNetwork":
        return {"network": example, "steps": 10}
    if model.endswith("Population"):
        return {"network": {"nodes": [example]}, "steps": 10}
    if model.endswith("Source"):
        target = {"name": "P", "type": "lif", "size": 2}
        edge = {"from": example["name"], "to": "P", "type": "one_to_one"}
        steps = {} if model == "TensorSource" else {"steps": 5}
        return {"network": {"nodes": [example, target], "edges": [edge]}, **steps}
    if model.endswith("Node"):  # between an input and a population, of the shape it needs
        shape = {"Conv1dNode": [1, 2], "Conv2dNode": [1, 1, 2], "AvgPool2dNode": [1, 1, 2]}.get(model, [2])
        size = 4 if model in ("Conv1dNode", "Conv2dNode") else 2
        nodes = [
            {"name": "in", "type": "poisson", "rates": 20.0, "shape": shape},
            example,
            {"name": "P", "type": "lif", "size": size},
        ]
        to_node = {"from": "in", "to": example["name"], "type": "identity"}
        return {
            "network": {"nodes": nodes, "edges": [to_node, {"from": example["name"], "to": "P", "type": "identity"}]},
            "steps": 5,
        }
    if model.endswith("Edge") or model in ("DelayRange", "Base64Indices"):
        edge = EXAMPLES["SparseEdge"] | {"pre": example} if model == "Base64Indices" else example
        edge = EXAMPLES["PairwiseBernoulliEdge"] | {"delay": example} if model == "DelayRange" else edge
        return {"network": {"nodes": GRAPH_CONTEXT, "edges": [edge]}, "steps": 10}
    if model.endswith("Synapse") or model.endswith("Rule") or model == "WeightRecord":
        return _synapse_example(model, example)
    weight = {"type": "linear", "in_features": 2, "out_features": 1, "weight": example}
    return {"network": {"layers": [weight]}, **DEFAULT_CONTEXT}


def _synapse_example(model: str, example: dict[str, Any]) -> dict[str, Any]:
    """A synapse, rule or weight record on a plastic edge from Poisson input into LIF neurons with channels."""
    edge: dict[str, Any] = {"name": "learning", "from": "in", "to": "P", "type": "pairwise_bernoulli", "p": 0.5, "delay": 1,
                            "weight": {"init": "uniform", "low": 0.0, "high": 0.01}}  # fmt: skip
    edge |= {"synapse": example} if model.endswith("Synapse") else {"plasticity": EXAMPLES["STDPRule"]}
    record = {"weights": {"learning": example}} if model == "WeightRecord" else {}
    nodes = [{"name": "in", "type": "poisson", "rates": 15.0, "shape": [20]}, {"name": "P", "type": "lif_channels", "size": 2}]
    return {"network": {"nodes": nodes, "edges": [edge]}, "steps": 20000, "dt": 0.0001, "record": record}


SYNAPSE_EQUATIONS = [
    "A population of `lif_channels` has one channel per distinct synapse of the edges into it (edges with the",
    "same synapse type and parameters share one), plus the delta input. With `dt` the step, `tau_m = 1 /",
    "tau_mem_inv` (s), voltages in the population's unit, currents `g` of a `current_exp` channel in that unit",
    "too (resistance times current, as Brette et al.'s CUBA writes them) and conductances `g` of a",
    "`conductance_exp` channel in units of the leak conductance (dimensionless), one step is, from the values",
    "before it:",
    "",
    "```",
    "g_k <- g_k + (the weights of the spikes arriving in channel k in this step)",
    "euler:  v' = v + dt / tau_m * ((v_leak - v) + sum_k I_k),   I_k = g_k  or  g_k * (e_rev_k - v)",
    "        g_k <- g_k * (1 - dt / tau_syn_k)",
    "exact:  v' = v_leak + (v - v_leak) exp(-dt / tau_m) + sum_k g_k P_k   (current channels only)",
    "        P_k = tau_k / (tau_k - tau_m) (exp(-dt / tau_k) - exp(-dt / tau_m))",
    "        g_k <- g_k * exp(-dt / tau_syn_k)",
    "v' <- v' + (the delta input of this step)",
    "refractory (rho > 0): v stays, no spike, rho <- rho - 1",
    "otherwise: spike where v' > v_th; then v <- v_reset and rho <- rho_reset, else v <- v'",
    "```",
    "",
    "A spike sent at step n over an edge of delay d arrives at step n + d and acts on the membrane in that",
    "step: a delay of one step is Brian2's delay of zero (its increments after step n's update). A neuron",
    "that spikes at step k is held at `v_reset` through step k + `rho_reset` (Brian2's `refractory` of",
    "`(rho_reset + 1) dt`). The channels go on decaying and receiving while the neuron is refractory.",
    "",
    "STDP (`plasticity`, pair-based with exponential traces) keeps a weight per synapse, a presynaptic",
    "trace per source neuron and a postsynaptic trace per target neuron. A presynaptic spike of step n",
    "has its event at step n + d - 1 (the last step before the target feels it). In every step t, after",
    "all nodes have run it:",
    "",
    "```",
    "1. x_post *= exp(-dt / tau_post)",
    "2. each presynaptic event of step t, sources in index order: its synapses deliver their weights",
    "   (before they change) to step t + 1 and then w += x_post; x_pre jumps: x_pre(t) + a_pre",
    "   (nearest: a_pre)",
    "3. each target spike of step t: x_post += a_post (nearest: x_post = a_post); every synapse into it:",
    "   w += x_pre(t)",
    "```",
    "",
    "where x_pre(t) is the presynaptic trace's value after its last jump times exp(-k dt / tau_pre) for",
    "the k steps since (a float32 table of the factors; 0 from 25 time constants on). So a pre and a",
    "post spike in one step count as pre before post (potentiation), as in Brian2, whose `on_pre` runs",
    "before `on_post`, and a graph's delay of one step is Brian2's delay of zero: Song et al.'s",
    "experiment with Brian2's parameters ends with Brian2's weight distribution (benchmarks). On the",
    "CPU the network kernel applies a synapse's potentiations at its source's next event (Morrison et",
    "al. 2007), with the same values and order. `bounds: hard` adds each change and clips to",
    "`[w_min, w_max]`; `soft` scales a rise by `(w_max - w) / (w_max - w_min)` and a fall by",
    "`(w - w_min) / (w_max - w_min)` (weight-dependent, multiplicative changes: the weights approach the",
    "bounds without reaching them). A plastic edge takes one spike per source neuron and step, has one",
    "delay of at least a step, runs without a batch, and its weights are 4 bytes each (16 per synapse in",
    "all, with its target, source and place among the target's synapses). Every plastic edge's final",
    "weights (and the snapshots `record.weights` asks for) are in the result, under `weights`.",
    "",
]


def _nir_example() -> str:
    """A NIR file of one IF neuron, base64: what ``NIRImport``'s example reads."""
    import base64
    import io

    import nir
    import numpy as np

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "if": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)),
            "output": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("input", "if"), ("if", "output")],
    )
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return base64.b64encode(buffer.getvalue()).decode()


def _nir_section() -> list[str]:
    lines = ["| NIR node | equations | spikeserve layers |", "|---|---|---|"]
    lines += [f"| `{node}` | {f'`{equations}`' if equations else ''} | {layers} |" for node, equations, layers in NIR_MAPPING]
    return [
        *lines,
        "",
        "The LIF, LI and IF rows (read continuously) are the exact Euler steps of their equations. In the",
        "current-based rows the synaptic current, kept in voltage units (`i = r I`), jumps by",
        "`r w_in dt / tau_syn S` and then decays by `dt / tau_syn`. Scale layers of factor 1 are left out;",
        "export (`spikeserve nir export`) writes the inverse mapping, so export then import returns the same",
        "layers. A graph that is one chain from its Input imports as layers; any other (branches, sums,",
        "loops, subgraphs such as snnTorch writes for `RLeaky` and `RSynaptic`, named `sub.node`) as a",
        "graph network joined by identity edges, the Input becoming the top-level `input`. NIR's edges carry",
        "no delay; the tools that write loops feed back the spikes of the step before into the loop's",
        "weights, so the edge that carries a population's spikes into those weights gets a delay of one",
        "step (a recurrent layer's bias reaches its neurons from the first step, as in snnTorch).",
        "",
        "With `if_input` left `continuous`, an IF node that cannot reach its threshold within the run",
        "under the largest input its weights can pass on, but could read per step, is named in the",
        "validation's and the job's `warnings`: the usual sign of a graph written by Sinabs or Norse.",
        "",
    ]


# The nodes around each edge example.
GRAPH_CONTEXT = [
    {"name": "in", "type": "poisson", "rates": 20.0, "shape": [2]},
    {"name": "P", "type": "lif", "size": 2},
]


def _type(schema_part: dict[str, Any]) -> str:
    """A JSON schema fragment as words: ``integer > 0``, ``list of string``, ``"a" or "b"``."""
    if "$ref" in schema_part:
        name = schema_part["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    for union in ("anyOf", "oneOf"):
        if union in schema_part:
            parts = [_type(part) for part in schema_part[union] if part.get("type") != "null"]
            return " or ".join(dict.fromkeys(parts))
    if "const" in schema_part:
        return json.dumps(schema_part["const"])
    if "enum" in schema_part:
        return " or ".join(json.dumps(value) for value in schema_part["enum"])
    kind = schema_part.get("type")
    if kind == "array":
        if "prefixItems" in schema_part:
            return "[" + ", ".join(_type(item) for item in schema_part["prefixItems"]) + "]"
        items = schema_part.get("items") or {}
        inner = _type(items) if items else "numbers (nested lists)"
        bound = f", at most {schema_part['maxItems']}" if "maxItems" in schema_part else ""
        return f"list of {inner}{bound}"
    if kind == "object" and "additionalProperties" in schema_part:
        return f"object of {_type(schema_part['additionalProperties'])}"
    words = {"integer": "integer", "number": "number", "string": "string", "boolean": "true or false"}.get(str(kind), str(kind))
    for key, sign in (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"), ("maximum", "<=")):
        if key in schema_part and not (key == "exclusiveMaximum" and schema_part[key] >= 2**63):
            words += f" {sign} {schema_part[key]:g}" if isinstance(schema_part[key], float) else f" {sign} {schema_part[key]}"
    if "pattern" in schema_part:
        words += " (a name)"
    return words


def _default(name: str, field: dict[str, Any], required: list[str]) -> str:
    if name in required:
        return "required"
    value = field.get("default")
    if isinstance(value, dict):  # a model's default: only what it sets
        value = {key: item for key, item in value.items() if item not in (None, [], {})}
    return "" if value is None else f"`{json.dumps(value)}`"


def _model_section(model: type[BaseModel], defs: dict[str, Any]) -> list[str]:
    name = model.__name__
    part = defs[name] if name in defs else model.model_json_schema(ref_template="#/$defs/{model}")
    doc = " ".join((model.__doc__ or "").split()).replace("``", "`")
    lines = [f"### {name}", "", doc, ""] if doc else [f"### {name}", ""]
    lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
    required = part.get("required", [])
    for field_name, field in part.get("properties", {}).items():
        kind, meaning = _type(field), field.get("description", "")
        if field_name == "params" and name in PARAMETER_MODEL_OF_LAYER:
            kind = "object of [parameters](#neuron-parameters)"
            meaning = f"the neurons' parameters, column {PARAMETER_MODEL_OF_LAYER[name]}"
        lines.append(f"| `{field_name}` | {kind} | {_default(field_name, field, required)} | {meaning} |")
    lines += ["", "```json", json.dumps(EXAMPLES[name]), "```", ""]
    return lines


def _column(name: str) -> str:
    return f"{name} (overrides of the preset's values)" if name == "izhikevich" else name


PARAMETER_MODEL_OF_LAYER = {layer.__name__: _column(name) for name, layer in schema.NEURON_LAYERS.items()}
PARAMETER_MODEL_OF_LAYER |= {population.__name__: _column(name) for name, population in schema.POPULATIONS.items()}


def _parameters_section(defaults: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Neuron parameters",
        "",
        "Omitted parameters take the engine's defaults (below). A number applies to every neuron; a nested",
        "list gives one value per neuron and broadcasts against the layer's shape. Time constants are",
        "inverse (1/s), as in Norse; voltages are in the model's own units (dimensionless for the LIF",
        "family, mV for Izhikevich).",
        "",
        "| parameter | meaning | " + " | ".join(PARAMETER_MODELS) + " |",
        "|---|---|" + "---|" * len(PARAMETER_MODELS),
    ]
    for parameter, described in PARAMETERS.items():
        meaning = described.meaning
        cells = []
        for layer_type, model in PARAMETER_MODELS.items():
            if parameter not in model.model_fields:
                cells.append("")
            else:
                value = defaults[layer_type].get(parameter)
                cells.append(f"`{json.dumps(value)}`" if value is not None else "yes")
        lines.append(f"| `{parameter}` | {meaning} | " + " | ".join(cells) + " |")
    presets = ", ".join(f"`{name}`" for name in schema.IZHIKEVICH_PRESET_NAMES)
    lines += ["", f"Izhikevich defaults are those of the `tonic_spiking` preset; the presets are {presets}.", ""]
    return lines


def engine_defaults() -> dict[str, dict[str, Any]]:
    """Each neuron type's default parameters (the engine's, generated from the registry)."""
    return {name: {parameter: model.default(parameter) for parameter in model.parameters} for name, model in MODELS.items()}


def reference() -> str:
    defs = schema.JobRequest.model_json_schema(ref_template="#/$defs/{model}").get("$defs", {})
    lines = [
        "# Job requests",
        "",
        "<!-- Written by `python -m worker.simulation.reference > docs/requests.md`; a test keeps it current. -->",
        "",
        "Every field a job request may hold, with its type, default and meaning; the same schema is",
        "served by a running server at `/docs` and `/openapi.json`. Unknown fields are errors (the",
        'error lists the fields allowed there), and values are never coerced: `"3"` and `true` are not',
        "integers. Every example below is checked to be a valid request. The limits on sizes and",
        "costs are in [reliability.md](reliability.md#limits-and-the-cost-model).",
        "",
    ]
    for title, intro, models in SECTIONS:
        lines += [f"## {title}", ""] + ([" ".join(intro.split()).replace("``", "`"), ""] if intro else [])
        for model in models:
            lines += _model_section(model, defs)
        if title == "Layers":
            lines += _parameters_section(engine_defaults())
        if title == "NIR networks":
            lines += _nir_section()
        if title == "Synapses and plasticity":
            lines += SYNAPSE_EQUATIONS
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
