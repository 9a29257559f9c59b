"""The semantic check that completes a request, and the plan the runner executes.

``prepare_request`` reads the JSON (``worker.simulation.parsing``), then checks what the JSON
structure cannot: a chain of layers (``chain_plan``) or a graph (``graph_plan``), the job's cost
included, into a ``Plan`` (``plans``); it raises ``InvalidRequest`` naming the field path of
each problem. The API calls it before a job is queued and the worker calls it again on the same
JSON, so no request reaches the engine unchecked. This module imports numpy and pydantic, never
torch.
"""

from typing import Any

from worker.simulation.chain_plan import validate_chain
from worker.simulation.graph_plan import validate_graph
from worker.simulation.limits import Limits
from worker.simulation.parsing import parse_model
from worker.simulation.plans import Plan
from worker.simulation.request import GraphNetwork, JobRequest


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
    request, data, notes = parse_model(data, limits)
    plan = validate_request(request, limits)
    plan.warnings += notes
    return request, plan, data


def validate_request(request: JobRequest, limits: Limits | None = None) -> Plan:
    limits = limits or Limits()
    if isinstance(request.network, GraphNetwork):
        return validate_graph(request, limits)
    return validate_chain(request, limits)
