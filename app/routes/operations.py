"""What operators and their tools ask: health, readiness and metrics."""

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from app.auth import owner_for
from app.deps import ServicesDep, Store
from app.metrics import StoreFigures, metrics_text
from app.models import Health, Message, Readiness

operations = APIRouter(tags=["operations"])


@operations.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@operations.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(store: Store) -> JSONResponse:
    """Ready when Redis answers and at least one worker has sent a heartbeat recently."""
    redis_ok = await store.ping()
    workers = await store.workers() if redis_ok else 0
    ready = redis_ok and workers > 0
    body = Readiness(status="ready" if ready else "not ready", redis=redis_ok, workers=workers)
    return JSONResponse(body.model_dump(), status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE)


@operations.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {"model": Message, "description": "a key is required"}},
)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus metrics; with API keys configured, only for a valid key unless SPIKESERVE_METRICS_PUBLIC is set."""
    if not services.settings.metrics_public:
        owner_for(request.headers.get("authorization"), services.settings)
    return Response(metrics_text(await StoreFigures.read(services.store)), media_type=CONTENT_TYPE_LATEST)
