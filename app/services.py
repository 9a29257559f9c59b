"""What the routes use, one of each per API process, made from the settings."""

import json
import logging
import pathlib
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from celery import Celery
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from app.auth import ANONYMOUS, owner_of_hash
from app.capacity import StoreCapacity
from app.events import SWEEP_READ_INTERVAL_S, EventHub, SharedReads, StreamSlots
from app.validation import Validator
from worker.broker import make_celery
from worker.settings import Settings
from worker.store import AsyncJobStore

log = logging.getLogger(__name__)
READS_CLIENT_NAME = "spikeserve-api-reads"  # how the API's connections show in Redis's CLIENT LIST


@dataclass
class Services:
    settings: Settings
    store: AsyncJobStore
    hub: EventHub
    validator: Validator
    queue: Celery  # builds the queue messages the store pushes
    slots: StreamSlots
    examples: dict[str, Any]
    capacity: StoreCapacity
    sweep_reads: SharedReads  # the sweep statuses that the event streams share

    async def aclose(self) -> None:
        await self.validator.aclose()
        await self.hub.aclose()
        await self.hub.client.aclose()
        await self.store.redis.aclose()


# The example a newcomer meets first (the viewer opens the first one; serve suggests it): one that
# spikes, 10,000 neurons driven by Poisson input, about a tenth of a second of simulation.
FIRST_EXAMPLE = "poisson_population"


def request_examples(directory: pathlib.Path) -> dict[str, dict[str, Any]]:
    """The shipped example requests, for the OpenAPI page and the viewer's menu: FIRST_EXAMPLE
    first, then by name."""
    paths = sorted(directory.glob("*.json"), key=lambda path: (path.stem != FIRST_EXAMPLE, path.stem))
    return {path.stem: {"summary": path.stem.replace("_", " "), "value": json.loads(path.read_text())} for path in paths}


def make_services(settings: Settings) -> Services:
    # Retrying is safe for reads and for the store's scripts (each changes all or nothing, and a
    # refused EVALSHA changed nothing): a pooled connection that a Redis restart closed fails its
    # first command (seen with uvloop), and the retry reconnects. The pool is bounded and waits for
    # a free connection instead of failing: every stream and long poll shares the event hub's one
    # connection, so the pool serves only short calls.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_connections,
        timeout=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=10,
        client_name=READS_CLIENT_NAME,
    )
    client = aioredis.Redis(connection_pool=pool)
    return Services(
        settings=settings,
        store=AsyncJobStore(client, job_ttl_s=settings.job_ttl_s),
        hub=EventHub(aioredis.Redis.from_url(settings.redis_url, client_name=READS_CLIENT_NAME, retry_on_error=[])),
        validator=Validator(
            settings.limits, settings.validation_processes, settings.validation_timeout_s, settings.validation_memory_bytes
        ),
        queue=make_celery(settings),
        slots=StreamSlots(settings.max_streams_per_key),
        examples=request_examples(settings.examples_dir),
        capacity=StoreCapacity(client, settings.store_full_fraction),
        sweep_reads=SharedReads(SWEEP_READ_INTERVAL_S),
    )


async def adopt_anonymous_jobs(store: AsyncJobStore, settings: Settings) -> None:
    """With keys configured, the jobs made while the server ran without keys belong to no key:
    SPIKESERVE_ANONYMOUS_JOBS_TO gives them to one; without it they stay hidden, and the log says so."""
    if not settings.auth_enabled:
        return
    try:
        if settings.anonymous_jobs_to is not None:
            moved = await store.reassign(ANONYMOUS, owner_of_hash(settings.anonymous_jobs_to))
            if moved:
                log.warning("%d jobs made without a key now belong to the key %s", moved, settings.anonymous_jobs_to[:15])
        elif hidden := await store.owned_count(ANONYMOUS):
            log.warning(
                "%d jobs made while the server ran without keys are hidden from every key; "
                "SPIKESERVE_ANONYMOUS_JOBS_TO='sha256:...' gives them to one",
                hidden,
            )
    except redis.RedisError:
        log.warning("could not look for jobs made without a key: the job store is unavailable")
