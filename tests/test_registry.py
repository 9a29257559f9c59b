"""The model registry is the one list of neuron models: the generated files are what it writes,
nothing else lists the models, and a new model is an entry and a step function."""

import ast
import json
import pathlib
import re
import subprocess
import sys

import pytest

from worker import registry

ROOT = pathlib.Path(__file__).parents[1]
GENERATED = set(registry.GENERATED)


@pytest.mark.parametrize("path", sorted(GENERATED), ids=lambda path: path.name)
def test_the_generated_files_are_what_the_registry_writes(path: pathlib.Path) -> None:
    assert path.read_text() == registry.GENERATED[path](), "run: python -m worker.registry"


def test_izhikevichs_defaults_are_its_tonic_spiking_preset() -> None:
    import worker.engine as snn

    preset = snn.IZHIKEVICH_PRESETS["tonic_spiking"].p
    assert snn.IzhikevichParameters() == preset


def _listed_models(node: ast.AST) -> set[str]:
    """The model types a literal tuple, list, set or dict (its keys) writes out."""
    elements: list[ast.AST | None] = []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        elements = list(node.elts)
    elif isinstance(node, ast.Dict):
        elements = list(node.keys)
    return {e.value for e in elements if isinstance(e, ast.Constant) and e.value in registry.MODELS}


def test_no_code_outside_the_registry_lists_the_models() -> None:
    """Code may name one model where it has code of its own for it (Izhikevich's presets, say),
    but a list of two or more is a second list of models, which the registry is there to replace."""
    found = []
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("worker/**/*.py")]:
        if path == ROOT / "worker" / "registry.py" or path in GENERATED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if len(listed := _listed_models(node)) >= 2:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {sorted(listed)}")  # type: ignore[attr-defined]
    quoted = re.compile(r"""["']([a-z_]+)["']""")
    for path in ROOT.glob("frontend/src/*.js"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if len({name for name in quoted.findall(line) if name in registry.MODELS}) >= 2:
                found.append(f"{path.relative_to(ROOT)}:{number}")
    assert not found, "lists of models outside worker/registry.py: " + "; ".join(found)
    # and the kernels know models by the ids the registry gives them, never by a number of their own
    for path in [*ROOT.glob("worker/engine/**/*.py"), *ROOT.glob("worker/engine/**/*.c")]:
        assert not re.search(r"MODEL\s*[=!]=\s*\d", path.read_text()), path


def test_the_finder_finds_a_list_of_models() -> None:
    assert _listed_models(ast.parse('("lif", "iaf", "conv2d")').body[0].value) == {"lif", "iaf"}  # type: ignore[attr-defined]


TOY = """
import json, sys
from typing import NamedTuple

from worker import registry

registry.MODELS["toy"] = registry.NeuronModel(
    "toy", "Toy", "Toy neurons: a membrane that leaks toward its input, and spikes.", "A population of toy neurons.",
    ("tau_mem_inv", "v_th", "v_reset", "method", "alpha", "reset_method"), ("v",), "Toy", "ToyParameters",
    layer_example={"type": "toy", "params": {"tau_mem_inv": 200.0}},
    population_example={"name": "toys", "type": "toy", "size": 3},
)
generated = {}
exec(registry.parameter_types_source(), generated)  # what `python -m worker.registry` would write

import torch
import worker.engine as snn
from worker.engine.module import SequenceModule
from worker.engine.reset import reset
from worker.engine.threshold import threshold

ToyParameters = generated["ToyParameters"]


class ToyState(NamedTuple):
    v: torch.Tensor


def toy_step(x, state, p, dt=0.001):
    v = state.v + dt * p.tau_mem_inv * (x - state.v)
    z = threshold(v - p.v_th, p.method, p.alpha)
    return z, ToyState(reset(z, v, p.v_th, p.v_reset, p.reset_method))


class Toy(SequenceModule):
    default_p = ToyParameters()

    def initial_state(self, x, p):
        return ToyState(torch.zeros_like(x))

    def step_fn(self, x, state, p):
        return toy_step(x, state, p, self.dt)


snn.Toy, snn.ToyParameters = Toy, ToyParameters

from worker.simulation.plan import parse_request
from worker.simulation.reference import reference
from worker.simulation.runner import simulate

chain = {"network": {"layers": [{"type": "toy", "name": "t", "params": {"v_th": [0.5, 3.0]}}]},
         "input": {"type": "constant", "value": [2.0, 2.0], "steps": 50}}
request, plan = parse_request(chain)
result = simulate(request, plan)
graph = {"steps": 50, "network": {"nodes": [{"name": "drive", "type": "constant", "value": [2.0, 2.0, 2.0]},
         {"name": "toys", "type": "toy", "size": 3, "params": {"v_th": 0.5}}],
         "edges": [{"from": "drive", "to": "toys", "type": "identity"}]}}
graph_result = simulate(*parse_request(graph))
try:
    parse_request({**chain, "network": {"layers": [{"type": "toy", "params": {"tau_mem_inv": -1.0}}]}})
    refused = None
except Exception as error:
    refused = str(error)
print(json.dumps({
    "spikes": result.layers["t"].counts.tolist(),
    "graph_spikes": int(graph_result.layers["toys"].spike_count),
    "neuron_steps": plan.cost.neuron_steps,
    "stepped": [layer.stepped for layer in plan.cost.layers],
    "refused": refused,
    "documented": "### ToyLayer" in reference() and "### ToyPopulation" in reference(),
    "parameter_column": "| toy |" in reference(),
}))
"""


def test_a_new_model_is_an_entry_and_a_step_function() -> None:
    """A toy model, added by a registry entry and a step function only (in a process of its
    own): the request schema takes it in a chain and in a graph, the cost model counts it (its
    step loop in Python), the builder builds it from its entry, it runs, its parameters are
    checked, and the reference documents it."""
    done = subprocess.run([sys.executable, "-c", TOY], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    low, high = seen["spikes"]
    assert low > 0 and high == 0, "the neuron with threshold 0.5 spikes, the one with 3.0 (over its input) never"
    assert seen["graph_spikes"] > 0 and seen["neuron_steps"] == 2 * 50 and seen["stepped"] == [True]
    assert seen["refused"] is not None and "network.layers[0].params.tau_mem_inv: must be positive" in seen["refused"]
    assert seen["documented"] and seen["parameter_column"]
