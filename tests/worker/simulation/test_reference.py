"""docs/requests.md is what worker.simulation.reference writes from the request models, covers every
model and parameter, and every example in it is a valid request."""

import pathlib
import re

import pytest

from worker.simulation import reference as request_reference
from worker.simulation import request as schema
from worker.simulation.plan import parse_request
from worker.simulation.reference import EXAMPLES, PARAMETER_MODELS, PARAMETERS, SECTIONS, example_request, reference

ROOT = pathlib.Path(__file__).parents[3]


def test_the_committed_reference_is_current() -> None:
    committed = (ROOT / "docs" / "requests.md").read_text()
    assert committed == reference(), "run: python -m worker.simulation.reference > docs/requests.md"


@pytest.mark.parametrize("model", sorted(EXAMPLES))
def test_every_example_is_a_valid_request(model: str) -> None:
    parse_request(example_request(model))


def test_every_request_model_and_parameter_is_described() -> None:
    rendered = {model.__name__ for _, _, models in SECTIONS for model in models}
    defined = set(schema.JobRequest.model_json_schema()["$defs"]) | {"JobRequest"}
    parameter_models = {model.__name__ for model in PARAMETER_MODELS.values()} | {"SpikingParams"}
    assert defined - parameter_models <= rendered, defined - parameter_models - rendered
    assert rendered <= set(EXAMPLES), "an example for every model"
    fields = {name for model in PARAMETER_MODELS.values() for name in model.model_fields}
    assert fields == set(PARAMETERS), "every neuron parameter has a meaning, and nothing else does"
    assert set(PARAMETER_MODELS) == set(schema.NEURON_TYPES)


def test_links_inside_the_reference_lead_somewhere() -> None:
    text = reference()
    anchors = {
        "#" + re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in re.findall(r"^#+ (.+)$", text, re.M)
    }
    for link in set(re.findall(r"\]\((#[^)]+)\)", text)):
        assert link in anchors, link
    assert request_reference.__doc__ and "docs/requests.md" in request_reference.__doc__
