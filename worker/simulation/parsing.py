"""From a request's JSON to its pydantic model: strict JSON decoding, NIR networks expanded to
layers, and pydantic's errors as field paths a user can read. This module imports numpy and
pydantic, never torch.
"""

import json
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from worker.registry import PLASTICITY_RULES, SYNAPSE_MODELS
from worker.simulation.checks import decode_tensor
from worker.simulation.errors import FieldError, InvalidRequest, Loc, fail
from worker.simulation.limits import Limits
from worker.simulation.nir_import import NIRError, if_notes, nir_to_network
from worker.simulation.request import (
    DT_ADAPTER,
    EDGE_TYPES,
    INPUT_TYPES,
    LAYER_TYPES,
    LEAF_TAGS,
    NETWORK_TAGS,
    NODE_TYPES,
    Base64Tensor,
    GraphNetwork,
    InitSpec,
    JobRequest,
    Network,
    NIRImport,
    nir_graph_of,
    value_kind,
)


def clean_loc(loc: Loc) -> Loc:
    """Pydantic puts union tags into error paths (``layers.1.lif.params``); drop them."""
    out: list[str | int] = []
    for position, part in enumerate(loc):
        if part in LEAF_TAGS or (position == 1 and loc[0] == "network" and part in NETWORK_TAGS):
            continue
        listed = out[-2] if len(out) >= 2 and isinstance(out[-1], int) else None
        if (
            (listed == "layers" and part in LAYER_TYPES)
            or (listed == "nodes" and part in NODE_TYPES)
            or (listed == "edges" and part in EDGE_TYPES)
            or (out == ["input"] and part in INPUT_TYPES)
            or (out[-1:] == ["synapse"] and part in SYNAPSE_MODELS)
            or (out[-1:] == ["plasticity"] and part in PLASTICITY_RULES)
        ):
            continue
        out.append(part)
    return tuple(out)


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


def expand_nir(data: Any, limits: Limits) -> tuple[Any, list[str]]:
    """The request with a NIR network (``{"nir": ...}``) replaced by its layers, so that what is
    stored and run is plain JSON (the file is read once, here, and never again by a worker), and
    what the import noticed (``worker.simulation.nir_import.if_notes``)."""
    if not isinstance(data, dict) or not isinstance(data.get("network"), dict) or data["network"].get("nir") is None:
        return data, []
    try:
        dt = DT_ADAPTER.validate_python(data.get("dt", 0.001))
    except ValidationError as error:
        raise InvalidRequest([FieldError(("dt",), e["msg"], e["type"]) for e in error.errors(include_url=False)]) from None
    try:
        NIRImport.model_validate(data["network"].get("nir_import") or {})
    except ValidationError as error:
        raise InvalidRequest(
            [FieldError(("network", "nir_import", *e["loc"]), e["msg"], e["type"]) for e in error.errors(include_url=False)]
        ) from None
    try:
        graph, options = nir_graph_of(data["network"], limits.max_input_bytes)
        network = nir_to_network(graph, dt, options)[0]
    except (ValueError, NIRError) as error:
        raise fail(("network", "nir"), str(error).removeprefix("nir: ")) from None
    notes = if_notes(graph, dt, _input_bounds(data.get("input")), _steps(data)) if options.if_input == "continuous" else []
    return {**data, "network": network}, notes


def _input_bounds(source: Any) -> tuple[float, float]:
    """The least and the most a request's input gives a feature in a step, as far as a glance at
    its JSON tells (a tensor's or a constant's values, a Poisson input's trains); (0, 1) for
    spikes and anything unclear."""
    if not isinstance(source, dict):
        return (0.0, 1.0)
    if source.get("type") == "poisson" and isinstance(source.get("sources", 1), int):
        return (0.0, float(source.get("sources", 1)))
    values = source.get("value") if source.get("type") == "constant" else source.get("data")
    if source.get("type") in ("constant", "tensor") and values is not None:
        try:
            array = decode_tensor(values, (), 2**62)
        except InvalidRequest:
            return (0.0, 1.0)
        return (float(min(array.min(initial=0.0), 0.0)), float(array.max(initial=0.0)))
    return (0.0, 1.0)


def _steps(data: dict[str, Any]) -> int | None:
    source = data.get("input")
    steps = data.get("steps") or (source.get("steps") if isinstance(source, dict) else None)
    if steps is None and isinstance(source, dict) and source.get("type") == "tensor" and isinstance(source.get("shape"), list):
        steps = source["shape"][0] if source["shape"] else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def parse_model(data: Any, limits: Limits) -> tuple[JobRequest, Any, list[str]]:
    """The request's JSON (dict, str or bytes) -> (its model, the JSON data as it will run, what a
    NIR import noticed); InvalidRequest naming each field at fault."""
    if isinstance(data, (str, bytes, bytearray)):
        data = loads_strict(data)
    data, notes = expand_nir(data, limits)
    try:
        request = JobRequest.model_validate(data, context={"limits": limits})
    except ValidationError as error:
        raise InvalidRequest([_field_error(e, data) for e in error.errors(include_url=False)]) from None
    return request, data, notes


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
    if GraphNetwork in models:  # the network: a graph when it has nodes
        return GraphNetwork if isinstance(value, dict) and "nodes" in value else Network
    if isinstance(value, dict) and "type" in value:
        for model in models:
            if "type" in model.model_fields and typing.get_args(model.model_fields["type"].annotation) == (value["type"],):
                return model
    by_tag = {"init-spec": InitSpec, "base64-tensor": Base64Tensor}
    kind = value_kind(value)
    return (by_tag.get(kind) if kind else None) or (members[0] if len(members) == 1 else None)
