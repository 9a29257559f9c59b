"""The request's JSON Schema (what /openapi.json publishes and the viewer's editor checks as the
user types) accepts what the server accepts."""

import json
import pathlib

import jsonschema_rs
import pytest

from worker.simulation.plan import parse_request
from worker.simulation.request import JobRequest

EXAMPLES = sorted((pathlib.Path(__file__).parents[3] / "examples").glob("*.json"))


@pytest.fixture(scope="module")
def validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(JobRequest.model_json_schema())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_is_valid_under_the_published_schema(path: pathlib.Path, validator) -> None:
    request = json.loads(path.read_text())
    if "base" in request:  # a sweep: its base is a job request
        request = request["base"]
    parse_request(request)  # the server takes it
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(request)]
    assert errors == []


def test_a_kernel_size_may_be_one_integer_or_a_pair_in_the_schema_as_on_the_server(validator) -> None:
    request = json.loads((pathlib.Path(__file__).parents[3] / "examples" / "conv_feedforward.json").read_text())
    conv = request["network"]["layers"][0]
    for kernel_size in (3, [3, 3]):
        conv["kernel_size"] = kernel_size
        parse_request(request)
        assert validator.is_valid(request)
    conv["kernel_size"] = [3, 3, 3]
    assert not validator.is_valid(request)
