"""The Prometheus metrics read the store's counters at scrape time."""

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from app.metrics import StoreCollector, StoreFigures
from app.redis_server import RedisServer
from worker.store import AsyncJobStore, JobStore


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[JobStore]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield JobStore(client)
    client.flushdb()


def succeeded_in(store: JobStore, wall_s: float) -> None:
    job_id = store.create("alice", b"{}", 10, max_in_flight=100).id
    store.start(job_id, "cpu")
    assert store.succeed(job_id, b"{}", b"npz", neuron_steps=10, wall_s=wall_s)


def test_the_duration_histogram_is_cumulative_over_the_jobs_per_bucket(store: JobStore, redis_server: RedisServer) -> None:
    for wall_s in (0.02, 0.3, 0.4, 4000.0):  # the last beyond every bucket but +Inf
        succeeded_in(store, wall_s)

    async def read() -> StoreFigures:
        async with aioredis.Redis.from_url(redis_server.url) as client:
            return await StoreFigures.read(AsyncJobStore(client))

    families = {family.name: family for family in StoreCollector(asyncio.run(read())).collect()}
    histogram = families["spikeserve_job_duration_seconds"]
    buckets = {sample.labels["le"]: sample.value for sample in histogram.samples if sample.name.endswith("_bucket")}
    assert buckets == {
        "0.01": 0,
        "0.05": 1,
        "0.1": 1,
        "0.5": 3,
        "1.0": 3,
        "5.0": 3,
        "10.0": 3,
        "60.0": 3,
        "300.0": 3,
        "1800.0": 3,
        "+Inf": 4,
    }
    totals = {sample.name: sample.value for sample in histogram.samples if not sample.name.endswith("_bucket")}
    assert totals["spikeserve_job_duration_seconds_count"] == 4
    assert totals["spikeserve_job_duration_seconds_sum"] == pytest.approx(4000.72)
