"""The job request schema: valid requests give the right plan; every bad request gets an error
that names the offending field path."""

import base64
import copy
import json
import math
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import worker.engine as snn
from worker import registry
from worker.simulation import request as schema
from worker.simulation.errors import InvalidRequest
from worker.simulation.limits import Limits
from worker.simulation.plan import parse_request

EXAMPLES = pathlib.Path(__file__).parents[3] / "examples"
SEED = json.loads((EXAMPLES / "seed.json").read_text())

Mutation = Callable[[dict[str, Any]], None]


def mutated(mutation: Mutation) -> dict[str, Any]:
    request = copy.deepcopy(SEED)
    mutation(request)
    return request


def layer(index: int, **changes: Any) -> Mutation:
    return lambda r: r["network"]["layers"][index].update(changes)


def top(**changes: Any) -> Mutation:
    return lambda r: r.update(changes)


def input_(**changes: Any) -> Mutation:
    return lambda r: r["input"].update(changes)


def append_layer(**spec: Any) -> Mutation:
    return lambda r: r["network"]["layers"].append(spec)


def b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


ROWS = [list(map(float, row)) for row in SEED["input"]["data"]]
POISSON = {"type": "poisson", "rates": 10.0, "shape": [5], "steps": 100}

# (id, mutation, limits or None, expected path, expected message fragment)
BAD_REQUESTS: list[tuple[str, Mutation, Limits | None, str, str]] = [
    ("unknown layer type", layer(1, type="lifx"), None, "network.layers[1]",
     "Input tag 'lifx' found using 'type' does not match"),
    ("layer without type", lambda r: r["network"]["layers"][1].pop("type"), None, "network.layers[1]", "Unable to extract tag"),
    ("unknown input type", input_(type="image"), None, "input", "Input tag 'image' found using 'type'"),
    ("unknown field", layer(0, in_feature=5), None, "network.layers[0].in_feature", "Extra inputs are not permitted"),
    ("no layers", lambda r: r["network"].update(layers=[]), None, "network.layers", "at least 1 item"),
    ("first layer does not fit the input", layer(0, in_features=6, weight=None), None, "network.layers[0].in_features",
     "is 6, but the input gives shape [5]"),
    ("consecutive layers do not fit", append_layer(type="linear", in_features=2, out_features=3), None,
     "network.layers[2].in_features", "is 2, but layer 'out' (lif) gives shape [1]"),
    ("conv2d on a flat input", lambda r: r["network"]["layers"].insert(0, {"type": "conv2d", "in_channels": 1, "out_channels": 2,
     "kernel_size": 3}), None, "network.layers[0]", "conv2d needs [channels, height, width] per sample"),
    ("conv1d on a flat input", lambda r: r["network"]["layers"].insert(0, {"type": "conv1d", "in_channels": 1, "out_channels": 2,
     "kernel_size": 3}), None, "network.layers[0]", "conv1d needs [channels, length] per sample"),
    ("kernel larger than the image", top(input={"type": "constant", "value": 1.0, "shape": [1, 4, 4], "steps": 3},
     network={"layers": [{"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 5}]}), None,
     "network.layers[0].kernel_size", "[5, 5] does not fit the input of size [4, 4]"),
    ("wrong weight shape", layer(0, weight=[[0.1, 0.2]]), None, "network.layers[0].weight", "has shape [1, 2], expected [1, 5]"),
    ("ragged weight", layer(0, weight=[[0.1, 0.2, 0.3, 0.4, 0.5], [0.1]]), None, "network.layers[0].weight",
     "rectangular nested list of numbers"),
    ("weight of the wrong type", layer(0, weight="heavy"), None, "network.layers[0].weight", "must be a nested list of numbers"),
    ("NaN in the input", input_(data=[[*ROWS[0][:2], math.nan, *ROWS[0][3:]], *ROWS[1:]]), None, "input.data",
     "contains NaN or Inf (first at index [0, 2])"),
    ("Inf in a weight", layer(0, weight=[[0.1, math.inf, 0.0, 0.0, 0.0]]), None, "network.layers[0].weight",
     "contains NaN or Inf"),
    ("NaN in a parameter", layer(1, params={"v_th": math.nan}), None, "network.layers[1].params.v_th", "finite number"),
    ("float32 overflow", layer(0, bias=[1e39]), None, "network.layers[0].bias", "beyond the float32 range"),
    ("zero dt", top(dt=0), None, "dt", "greater than or equal to 0.000001"),
    ("negative dt", top(dt=-0.001), None, "dt", "greater than or equal to 0.000001"),
    ("a denormal dt", top(dt=5e-324), None, "dt", "greater than or equal to 0.000001"),
    ("steps as a string", top(steps="4"), None, "steps", "Input should be a valid integer"),
    ("steps as a boolean", top(steps=True), None, "steps", "Input should be a valid integer"),
    ("steps as a float", top(steps=4.0), None, "steps", "Input should be a valid integer"),
    ("dt as a string", top(dt="0.001"), None, "dt", "Input should be a valid number"),
    ("autapses as a number", top(network={"layers": [{"type": "lif_recurrent", "in_features": 5, "out_features": 2,
     "autapses": 1}]}), None, "network.layers[0].autapses", "Input should be a valid boolean"),
    ("weights as strings", layer(0, weight=[["0.1", "0.2", "0.3", "0.4", "0.5"]]), None, "network.layers[0].weight",
     "must hold numbers only, found \"0.1\""),
    ("weights as booleans", layer(0, weight=[[True, False, True, False, True]]), None, "network.layers[0].weight",
     "must hold numbers only, found true"),
    ("a parameter nested nine lists deep", layer(1, params={"v_th": [[[[[[[[[1.0]]]]]]]]]}), None,
     "network.layers[1].params.v_th", "is nested more than 8 lists deep"),
    ("a tensor of 65 dimensions", input_(data={"dtype": "float32", "shape": [1] * 65, "base64": b64([1.0])}), None,
     "input.data.shape", "at most 8 items"),
    ("an input shape of 9 dimensions", top(input={"type": "constant", "value": 1.0, "shape": [1] * 9, "steps": 3}), None,
     "input.shape", "at most 8 items"),
    ("a conv padding as wide as its kernel", top(input={"type": "constant", "value": 1.0, "shape": [1, 4, 4], "steps": 3},
     network={"layers": [{"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 3}]}), None,
     "network.layers[0].padding", "must be less than the kernel size [3, 3]"),
    ("a conv padding of 2^70", top(input={"type": "constant", "value": 1.0, "shape": [1, 8], "steps": 3},
     network={"layers": [{"type": "conv1d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 2**70}]}), None,
     "network.layers[0].padding", "must be less than the kernel size 3"),
    ("zero membrane time constant", layer(1, params={"tau_mem_inv": 0}), None, "network.layers[1].params.tau_mem_inv",
     "must be positive"),
    ("negative per-neuron time constant", layer(1, params={"tau_syn_inv": [-5.0]}), None, "network.layers[1].params.tau_syn_inv",
     "must be positive"),
    ("scale that does not broadcast", lambda r: r["network"]["layers"].insert(1, {"type": "scale", "weight": [1.0, 2.0]}), None,
     "network.layers[1].weight", "has shape [2], not broadcastable to [1]"),
    ("parameter that does not broadcast", layer(1, params={"v_th": [1.0, 2.0]}), None, "network.layers[1].params.v_th",
     "not broadcastable to the layer shape [1]"),
    ("unknown threshold method", layer(1, params={"method": "magic"}), None, "network.layers[1].params.method",
     "Input should be"),
    ("duplicate layer names", layer(0, name="out"), None, "network.layers[1].name",
     "duplicate layer name 'out' (also network.layers[0])"),
    ("layer name with spaces and unicode", layer(1, name="sortie de réseau"), None, "network.layers[1].name",
     "String should match pattern"),
    ("a layer named '..'", layer(1, name=".."), None, "network.layers[1].name", "String should match pattern"),
    ("a layer name with a slash", layer(1, name="a/b"), None, "network.layers[1].name", "String should match pattern"),
    ("unknown layer in record", top(record={"spikes": ["nope"]}), None, "record.spikes[0]",
     "unknown layer 'nope'; layers are fc, out"),
    ("layer recorded twice", top(record={"spikes": ["out", "out"]}), None, "record.spikes[1]", "listed twice"),
    ("spikes of a linear layer", top(record={"spikes": ["fc"]}), None, "record.spikes[0]", "layer 'fc' (linear) does not spike"),
    ("voltages of a linear layer", top(record={"voltages": ["fc"]}), None, "record.voltages[0]", "has no membrane voltage"),
    ("live spikes of a layer not recorded", top(record={"spikes": [], "live": ["out"]}), None, "record.live[0]",
     "layer 'out' is not among the layers whose spikes are recorded"),
    ("live spikes of an unknown layer", top(record={"live": ["nope"]}), None, "record.live[0]", "layer 'nope' is not among"),
    ("a live layer listed twice", top(record={"live": ["out", "out"]}), None, "record.live[1]", "listed twice"),
    ("voltage neuron out of range", top(record={"voltages": ["out"], "neurons": {"out": [3]}}), None, "record.neurons.out",
     "index 3 is out of range for 1 neurons"),
    ("steps over the limit", top(input=POISSON), Limits(max_steps=50), "input", "100 steps are over the limit of 50"),
    ("a billion steps", top(input={**POISSON, "steps": 10**9}), None, "input", "1000000000 steps are over the limit"),
    ("neurons over the limit", layer(0, out_features=7, weight=None, bias=True), Limits(max_neurons=5), "network",
     "has 7 neurons, over the limit of 5"),
    ("neuron-steps over the limit", top(input=POISSON), Limits(max_neuron_steps=99), "network",
     "100 neuron-steps (neurons x batch x steps) are over the limit of 99"),
    ("synaptic operations over the limit", top(input=POISSON), Limits(max_synaptic_ops=499), "network.layers[0]",
     "the job needs 500 synaptic operations (linear 'fc': 500), over the limit of 499"),
    ("one step's operations over the limit", layer(0, out_features=3, weight=None, bias=True), Limits(max_step_ops=14),
     "network.layers[0]", "one step needs 15 synaptic operations (linear 'fc': 15), over the limit of 14 per step"),
    ("a linear layer of 50 million outputs", top(input={"type": "constant", "value": [1.0], "steps": 3}, record={},
     network={"layers": [{"type": "linear", "in_features": 1, "out_features": 50_000_000,
     "weight": {"init": "constant", "value": 0.1}}]}), Limits(max_chunk_bytes=100 * 2**20), "network.layers[0]",
     "one step needs 190.7 MiB of memory (linear 'linear_0': 190.7 MiB), over the limit of 100.0 MiB"),
    ("a conv whose padded input is too large", top(input={"type": "constant", "value": 1.0, "shape": [64, 512, 512],
     "steps": 3}, record={}, network={"layers": [{"type": "conv2d", "in_channels": 64, "out_channels": 1, "kernel_size": 9,
     "padding": 4, "weight": {"init": "constant", "value": 0.0}}]}), Limits(max_chunk_bytes=2**30, max_input_bytes=2**30),
     "network.layers[0]",
     "of which 5.1 GiB padded and unfolded input), over the limit of 1.0 GiB per chunk"),
    ("max_spike_events over the limit", top(record={"max_spike_events": 1001}), Limits(max_spike_events=1000),
     "record.max_spike_events", "1001 is over the limit of 1000"),
    ("recorded voltages over the limit", top(input=POISSON, record={"voltages": ["out"]}), Limits(max_record_bytes=300),
     "record", "would keep up to 408 bytes (100 voltage values, 0 spike events), over the limit of 300 bytes"),
    ("an explicit spike event limit that does not fit", top(input=POISSON, record={"voltages": ["out"], "max_spike_events": 100}),
     Limits(max_record_bytes=1000), "record", "would keep up to 2.7 KiB (100 voltage values, 100 spike events)"),
    ("a result over the limit", top(input=POISSON, record={"voltages": ["out"], "max_spike_events": 10}),
     Limits(max_result_bytes=65_536), "record", "the result could take up to 66.4 KiB as JSON or NPZ"),
    ("input bytes over the limit", top(input={"type": "tensor", "shape": [1000, 5], "data": [[0.0] * 5] * 1000}),
     Limits(max_input_bytes=4000), "input.shape", "20000 bytes of input exceed the limit of 4000"),
    ("shape product that overflows memory", top(input={"type": "tensor", "shape": [2**40, 2**40, 5], "data": []}), None,
     "input.shape", "bytes of input exceed the limit"),
    ("input data does not match its shape", input_(shape=[5, 5]), None, "input.data",
     "has shape [4, 5], but input.shape is [5, 5]"),
    ("base64 that is not", input_(data={"dtype": "float32", "shape": [4, 5], "base64": "not base64!"}), None,
     "input.data.base64", "is not valid base64"),
    ("base64 of the wrong length", input_(data={"dtype": "float32", "shape": [4, 5], "base64": b64([1.0, 2.0])}), None,
     "input.data.base64", "decodes to 8 bytes, but shape [4, 5] of float32 needs 80"),
    ("negative Poisson rates", top(input={**POISSON, "rates": -1.0}), None, "input.rates", "must not be negative"),
    ("Poisson rate above one spike per step", top(input={**POISSON, "rates": 2000.0}), None, "input.rates",
     "exceed 1/dt = 1000 Hz"),
    ("constant scalar without a shape", top(input={"type": "constant", "value": 1.0, "steps": 3}), None, "input.shape",
     "is required when 'value' is a single number"),
    ("Poisson without steps", top(input={"type": "poisson", "rates": [1.0] * 5}), None, "input.steps", "is required"),
    ("spike index out of range", top(input={"type": "spikes", "times": [0, 1], "indices": [0, 9], "size": 5, "steps": 3}), None,
     "input.indices[1]", "9 is out of range (must be < 5)"),
    ("spike time out of range", top(input={"type": "spikes", "times": [3], "indices": [0], "size": 5, "steps": 3}), None,
     "input.times[0]", "3 is out of range (must be < 3)"),
    ("spike lists of different lengths", top(input={"type": "spikes", "times": [0, 1], "indices": [0], "size": 5, "steps": 3}),
     None, "input.indices", "has 1 entries but times has 2"),
    ("steps disagree with the tensor", top(steps=7), None, "steps", "is 7 but input gives 4 steps"),
    ("batch disagrees with the tensor", top(batch=3, input={"type": "tensor", "shape": [4, 2, 5], "data": [[[0.0] * 5] * 2] * 4}),
     None, "input.shape", "has batch dimension 2, but 'batch' is 3"),
    ("negative seed", top(seed=-1), None, "seed", "greater than or equal to 0"),
    ("unknown Izhikevich preset", top(network={"layers": [{"type": "izhikevich", "preset": "chaotic"}]},
     input={"type": "constant", "value": 10.0, "shape": [2], "steps": 3}), None, "network.layers[0].preset", "Input should be"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutation", "limits", "path", "message"), [row[1:] for row in BAD_REQUESTS], ids=[row[0] for row in BAD_REQUESTS]
)
def test_bad_request_names_the_field(mutation: Mutation, limits: Limits | None, path: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(mutated(mutation), limits)
    errors = caught.value.errors
    assert errors[0].path == path, errors
    assert message in errors[0].msg, errors
    assert str(caught.value).startswith(f"{path}: ")


def test_json_text_with_nan_tokens_is_rejected_too() -> None:
    text = json.dumps(SEED).replace(str(SEED["input"]["data"][0][0]), "NaN", 1)
    with pytest.raises(InvalidRequest, match=r"input\.data: contains NaN"):
        parse_request(text)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_example_is_valid(path: pathlib.Path) -> None:
    _, plan = parse_request(path.read_bytes())
    assert plan.steps > 0 and plan.neurons > 0


def test_plan_infers_shapes_through_a_conv_network() -> None:
    _, plan = parse_request((EXAMPLES / "conv_feedforward.json").read_bytes())
    assert [(layer.name, layer.out_shape) for layer in plan.layers] == [
        ("conv", (4, 16, 16)),
        ("conv_lif", (4, 16, 16)),
        ("pool", (4, 8, 8)),
        ("flat", (256,)),
        ("fc1", (32,)),
        ("hidden", (32,)),
        ("fc2", (10,)),
        ("out", (10,)),
    ]
    assert plan.neurons == 4 * 16 * 16 + 32 + 10
    assert plan.neuron_steps == plan.neurons * 200


def test_defaults_record_every_spiking_layer_and_name_layers_by_type() -> None:
    request = {
        "network": {"layers": [{"type": "linear", "in_features": 3, "out_features": 2}, {"type": "lif"}, {"type": "li"}]},
        "input": {"type": "constant", "value": [1.0, 1.0, 1.0], "steps": 10},
    }
    _, plan = parse_request(request)
    assert [layer.name for layer in plan.layers] == ["linear_0", "lif_1", "li_2"]
    assert plan.record_spikes == ["lif_1"]
    assert plan.record_voltages == {}


def test_base64_and_nested_lists_decode_to_the_same_values() -> None:
    flat = [v for row in SEED["input"]["data"] for v in row]
    _, from_list = parse_request(SEED)
    _, from_base64 = parse_request(mutated(input_(data={"dtype": "float32", "shape": [4, 5], "base64": b64(flat)})))
    assert np.array_equal(from_list.input_array, from_base64.input_array)


def test_batched_tensor_input_keeps_the_batch_out_of_the_sample_shape() -> None:
    _, plan = parse_request(mutated(top(batch=2, input={"type": "tensor", "shape": [4, 2, 5], "data": [[[0.5] * 5] * 2] * 4})))
    assert plan.batch == 2 and plan.input_shape == (5,)
    assert plan.neuron_steps == 1 * 2 * 4


def test_schema_lists_match_the_engine() -> None:
    """The schema may not import torch, so its copies of engine names are checked here."""
    assert set(registry.THRESHOLD_METHODS) == set(snn.threshold.__globals__["METHODS"])
    assert set(schema.IZHIKEVICH_PRESET_NAMES) == set(snn.IZHIKEVICH_PRESETS)


@pytest.mark.parametrize("model", registry.MODELS.values(), ids=lambda model: model.type)
def test_every_engine_parameter_can_be_set_from_json(model: registry.NeuronModel) -> None:
    assert set(schema.PARAMS[model.parameter_type].model_fields) == set(getattr(snn, model.parameter_type)._fields)


def test_the_schema_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, worker.simulation.plan; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
