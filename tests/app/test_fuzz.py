"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis,
in-process, against a real Redis): no 5xx, and every response matches what the schema documents.

/readyz answers a documented 503 while no worker runs (none does here), so for that operation the
generic "no 5xx" check gives way to the documented contract. One check is left out everywhere:
"schema-valid data must be accepted". The OpenAPI schema describes the
request's structure, but a structurally valid network can still be wrong in ways no JSON Schema
expresses (the shape of one layer not fitting the next), and those get a documented 422.
"""

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from app.api import create_app
from app.redis_server import RedisServer
from worker.settings import Settings

pytestmark = pytest.mark.slow  # over 500 generated requests

CASES_PER_OPERATION = 60  # operations without parameters yield one case each; over 500 in all
FUZZ_SETTINGS = settings(
    max_examples=CASES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)


def fuzz(operation: "schemathesis.APIOperation", counts: dict[str, int]) -> None:
    """Runs CASES_PER_OPERATION generated requests against one operation."""

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy())
    def exercise(case: schemathesis.Case) -> None:
        counts[operation.label] = counts.get(operation.label, 0) + 1
        excluded = [checks.positive_data_acceptance]
        if operation.path == "/readyz":
            excluded.append(checks.not_a_server_error)
        case.call_and_validate(excluded_checks=excluded)

    exercise()


def test_no_operation_fails_or_breaks_its_documented_contract(redis_server: RedisServer) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    # Jobs are queued into this Redis and stay queued (no worker here): the API side is under test.
    app = create_app(Settings(redis_url=redis_server.url, max_jobs_in_flight_per_key=10**6, max_body_bytes=2 * 2**20))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        fuzz(result.ok(), counts)
    assert len(counts) >= 10, counts
    assert sum(counts.values()) >= 500, counts
