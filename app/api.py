"""The FastAPI application: its routers (``app.routes``), the middleware that reads bodies
(``app.middleware``), the errors every route may raise, and the OpenAPI schema with the request
format. What the routes use arrives as ``Annotated`` dependencies (``app.deps``) from the
application's ``Services`` (``app.services``)."""

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from app.capacity import StoreFull
from app.middleware import BodyGuard
from app.routes.jobs import jobs, requests
from app.routes.operations import operations
from app.routes.sweeps import sweeps
from app.services import adopt_anonymous_jobs, make_services
from app.validation import ValidatorBusy
from worker.registry import viewer_models
from worker.settings import Settings
from worker.simulation.errors import InvalidRequest
from worker.simulation.parsing import clean_loc
from worker.simulation.request import JobRequest
from worker.simulation.sweep import SweepRequest
from worker.store import InFlightLimit, StorageQuota

log = logging.getLogger(__name__)


def _openapi_with_request_schema(app: FastAPI, examples: dict[str, Any]) -> dict[str, Any]:
    """The request body is read raw (validated off the event loop), so its schema and examples
    are added here."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        request_schema = JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request_schema.pop("$defs", {}))
        components["JobRequest"] = request_schema
        sweep_schema = SweepRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(sweep_schema.pop("$defs", {}))
        sweep_schema["properties"]["base"] = {
            "$ref": "#/components/schemas/JobRequest",
            "description": "the request every point starts from",
        }
        components["SweepRequest"] = sweep_schema
        schema["x-neuron-models"] = viewer_models()  # what the viewer shows of each model (thresholds, units)
        for methods in schema["paths"].values():
            for operation in methods.values():
                body = operation.get("requestBody", {}).get("content", {}).get("application/json")
                if body is not None and body.get("schema") == {"$ref": "#/components/schemas/JobRequest"}:
                    body["examples"] = examples
        app.openapi_schema = schema
    return app.openapi_schema


def _exception_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidRequest)
    async def invalid_request(request: Request, error: InvalidRequest) -> JSONResponse:
        detail = [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in error.errors]
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = []
        for e in error.errors():
            loc = tuple(e["loc"])
            loc = clean_loc(loc[1:]) if loc[:1] == ("body",) else loc
            detail.append({"loc": list(loc), "msg": e["msg"], "type": e["type"]})
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(StorageQuota)
    async def over_quota(request: Request, error: StorageQuota) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status.HTTP_403_FORBIDDEN)

    @app.exception_handler(StoreFull)
    async def store_full(request: Request, error: StoreFull) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status.HTTP_507_INSUFFICIENT_STORAGE, headers={"Retry-After": "30"})

    @app.exception_handler(InFlightLimit)
    async def too_many(request: Request, error: InFlightLimit) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": "5"})

    @app.exception_handler(redis.RedisError)
    async def store_down(request: Request, error: redis.RedisError) -> JSONResponse:
        log.warning("%s %s: the job store is unavailable: %r", request.method, request.url.path, error)
        return JSONResponse(
            {"detail": "the job store is unavailable; try again"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ValidatorBusy)
    async def validator_busy(request: Request, error: ValidatorBusy) -> JSONResponse:
        return JSONResponse(
            {"detail": f"{error}; retry"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = make_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await adopt_anonymous_jobs(services.store, settings)
        yield
        await services.aclose()

    app = FastAPI(
        title="spikeserve",
        version="0.1.0",
        description="Remote spiking-neural-network simulation. Submit a network and its input; get spike trains back.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.openapi = lambda: _openapi_with_request_schema(app, services.examples)  # type: ignore[method-assign]
    _exception_handlers(app)
    for router in (jobs, requests, sweeps, operations):
        app.include_router(router)
    if settings.viewer_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.viewer_dir, html=True), name="viewer")
    else:

        @app.get("/", include_in_schema=False)
        async def no_viewer() -> RedirectResponse:
            return RedirectResponse("/docs")

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.max_body_bytes,
        budget_bytes=settings.max_buffered_body_bytes,
        timeout_s=settings.body_timeout_s,
        idle_timeout_s=settings.body_idle_timeout_s,
    )
    return app
