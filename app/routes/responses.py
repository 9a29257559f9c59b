"""What the routes answer besides success, for the OpenAPI schema."""

from typing import Any

from fastapi import HTTPException, Response, status

from app.models import Message, ValidationErrorResponse

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "missing or invalid API key"},
    404: {"model": Message, "description": "no such job for this key (unknown and foreign ids look the same)"},
}
REQUEST_ERRORS: dict[int | str, dict[str, Any]] = {
    408: {"model": Message, "description": "the request body did not arrive in time"},
    413: {"model": Message, "description": "request body too large"},
    415: {"model": Message, "description": "the body is not application/json"},
    422: {"model": ValidationErrorResponse, "description": "invalid request; each error names the field path"},
    503: {"model": Message, "description": "the server is busy (too many large bodies or validations at once); retry"},
    507: {"model": Message, "description": "the job store is too full for new jobs; retry later"},
}
QUOTA_ERROR: dict[int | str, dict[str, Any]] = {
    403: {"model": Message, "description": "the key keeps as many bytes in the job store as its quota allows"}
}
PURGED: dict[int | str, dict[str, Any]] = {
    204: {"description": "purged: deleted with everything it kept"},
    409: {"model": Message, "description": "only what has finished can be purged"},
}
TOO_MANY_WAITS: dict[int | str, dict[str, Any]] = {429: {"model": Message, "description": "too many waits open"}}
TOO_MANY_STREAMS: dict[int | str, dict[str, Any]] = {
    429: {"model": Message, "description": "too many event streams open for this key"}
}
# The request bodies are read raw (validated off the event loop): their schemas and examples are
# added to the OpenAPI schema by app.api.
JOB_REQUEST_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}}
}
SWEEP_REQUEST_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SweepRequest"}}}}
}


def as_submitted(what: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answer of a route that returns a stored request (``what``) as it was sent."""
    return {200: {"content": {"application/json": {}}, "description": f"the {what} as submitted"}}


def stored_json(body: bytes | None, what: str) -> Response:
    """A stored request as it was submitted; 410 when the store no longer keeps it."""
    if body is None:
        raise HTTPException(status.HTTP_410_GONE, f"the {what} has expired")
    return Response(body, media_type="application/json")
