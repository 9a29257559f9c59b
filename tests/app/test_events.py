"""Status events: one pub/sub connection per API process fans out to every stream and long poll,
which survive a Redis restart; streams per key are capped."""

import asyncio
import contextlib
import json
import logging
import pathlib

import pytest
import redis
import redis.asyncio as aioredis

from app.events import EventHub, Listener, SharedReads, StreamSlots, job_events, sweep_events, wait_final
from app.redis_server import RedisServer
from worker.store import AsyncJobStore, JobStore


def pubsub_connections(client: redis.Redis) -> int:
    return sum(1 for entry in client.client_list() if int(entry.get("psub", 0)) or int(entry.get("sub", 0)))


async def until(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_one_connection_serves_every_listener_and_each_gets_only_its_jobs_events(redis_server: RedisServer) -> None:
    sync = redis.Redis.from_url(redis_server.url)

    async def scenario() -> tuple[int, list, list]:
        client = aioredis.Redis.from_url(redis_server.url)
        hub = EventHub(client)
        try:
            with contextlib.ExitStack() as stack:
                listeners = [stack.enter_context(hub.listen(job_id)) for job_id in ["a"] * 100 + ["b"]]
                await until(lambda: pubsub_connections(sync) == 1)
                connections = pubsub_connections(sync)
                for listener in listeners:  # the hub asks every listener to re-read once it subscribed
                    assert await listener.wait(1) is None
                await client.publish("ss:events:a", json.dumps({"status": "running", "steps_done": 1, "steps_total": 2}))
                got_a = [await listener.wait(2) for listener in listeners[:100]]
                got_b = await listeners[100].wait(0.2)
            return connections, got_a, [got_b]
        finally:
            await hub.aclose()
            await client.aclose()

    connections, got_a, got_b = asyncio.run(scenario())
    assert connections == 1
    assert got_a == [{"status": "running", "steps_done": 1, "steps_total": 2}] * 100
    assert got_b == [None], "another job's events do not reach this listener"


def test_the_hub_subscribes_to_the_jobs_it_follows_only_and_for_as_long_as_they_are_followed(redis_server: RedisServer) -> None:
    sync = redis.Redis.from_url(redis_server.url)
    subscribers = lambda job_id: sync.pubsub_numsub(f"ss:events:{job_id}")[0][1]  # noqa: E731

    async def scenario() -> list[tuple[int, int, int]]:
        client = aioredis.Redis.from_url(redis_server.url)
        hub = EventHub(client)
        seen = []
        try:
            with hub.listen("a") as first:
                assert await first.wait(2) is None, "a confirmed subscription asks its listeners to re-read"
                with hub.listen("a"), hub.listen("b") as second:
                    assert await second.wait(2) is None
                    seen.append((subscribers("a"), subscribers("b"), subscribers("c")))
                await until(lambda: subscribers("b") == 0)
                seen.append((subscribers("a"), subscribers("b"), subscribers("c")))
                # an event published for a job nobody follows reaches no API process at all
                event = json.dumps({"status": "running", "steps_done": 0, "steps_total": 1})
                assert await client.publish("ss:events:c", event) == 0
            await until(lambda: subscribers("a") == 0)
            with hub.listen("a") as again:  # followed anew: subscribed anew, and told to re-read
                assert await again.wait(2) is None
                seen.append((subscribers("a"), subscribers("b"), subscribers("c")))
        finally:
            await hub.aclose()
            await client.aclose()
        return seen

    assert asyncio.run(scenario()) == [(1, 1, 0), (1, 0, 0), (1, 0, 0)]


def test_a_hub_closed_in_one_event_loop_follows_jobs_in_the_next(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    hub = EventHub(aioredis.Redis.from_url(redis_server.url))

    async def follow_two_jobs_one_after_the_other() -> list[dict | None]:
        hub.client = aioredis.Redis.from_url(redis_server.url)
        confirmations = []
        for job_id in ("a", "b"):  # the second needs the subscription task to wait a second time
            with hub.listen(job_id) as listener:
                confirmations.append(await listener.wait(2))
        await hub.aclose()
        return confirmations

    with caplog.at_level(logging.WARNING, logger="app.events"):
        assert asyncio.run(follow_two_jobs_one_after_the_other()) == [None, None]
        assert asyncio.run(follow_two_jobs_one_after_the_other()) == [None, None]
    assert not caplog.records, "no subscription was lost"


def test_streams_and_long_polls_follow_a_job_through_a_redis_restart(tmp_path: pathlib.Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    store = JobStore(redis.Redis.from_url(server.url))
    job_id = store.create("alice", b"{}", 10, max_in_flight=10).id

    async def scenario() -> tuple[list, bool]:
        client = aioredis.Redis.from_url(server.url, retry_on_error=[redis.ConnectionError])  # as the API's reads
        hub = EventHub(aioredis.Redis.from_url(server.url, retry_on_error=[]))  # as the API's hub
        reader = AsyncJobStore(client)
        events: list = []

        async def stream() -> None:
            async for chunk in job_events(reader, hub, job_id):
                assert chunk.startswith(b"event: status\r\ndata: ") and chunk.endswith(b"\r\n\r\n")
                events.append(json.loads(chunk.split(b"data: ", 1)[1]))

        follower = asyncio.create_task(stream())
        waiter = asyncio.create_task(wait_final(reader, hub, job_id, 60))
        await until(lambda: events)
        store.start(job_id, "cpu")
        await until(lambda: len(events) == 2)
        server.stop()  # the hub's subscription breaks; messages published now are lost to it
        server.start()
        store.progress(job_id, 5, 10)
        store.succeed(job_id, b"{}", b"", 10, 0.1)
        await asyncio.wait_for(follower, 5)  # the hub reconnects, and its listeners re-read the record
        await asyncio.wait_for(waiter, 5)
        await hub.aclose()
        await hub.client.aclose()
        await client.aclose()
        return events, waiter.done()

    try:
        events, waited = asyncio.run(scenario())
    finally:
        server.stop()
    assert [event["status"] for event in events][:2] == ["queued", "running"]
    assert events[-1] == {"status": "succeeded", "steps_done": 10, "steps_total": 10}
    assert waited


def test_a_long_poll_answers_when_its_wait_is_over(redis_server: RedisServer) -> None:
    store = JobStore(redis.Redis.from_url(redis_server.url))
    job_id = store.create("alice", b"{}", 10, max_in_flight=10).id

    async def scenario() -> float:
        client = aioredis.Redis.from_url(redis_server.url)
        hub = EventHub(client)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await wait_final(AsyncJobStore(client), hub, job_id, 0.3)
        elapsed = loop.time() - started
        await hub.aclose()
        await client.aclose()
        return elapsed

    assert 0.3 <= asyncio.run(scenario()) < 1.5


def test_a_burst_of_sweep_events_keeps_the_newest_and_ends_the_sweeps_stream(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    listener = Listener("s")
    for ended in (1, 2, 3):  # events a stream has not taken yet: the newest stays
        listener.push({"sweep": "s", "ended": ended, "points": 3})
    assert listener.latest == {"sweep": "s", "ended": 3, "points": 3}
    ended = {"points": 0}

    async def read_status() -> dict:
        return {"status": "succeeded" if ended["points"] == 3 else "running", "ended": ended["points"]}

    async def scenario() -> list[bytes]:
        client = aioredis.Redis.from_url(redis_server.url)
        hub = EventHub(client)
        stream = sweep_events(hub, "s", read_status, period_s=60)  # no re-read before a minute
        try:
            sent = [await anext(stream)]
            await until(lambda: sync.pubsub_numsub("ss:events:s")[0][1] == 1)
            ended["points"] = 3
            for count in (1, 2, 3):  # the points of a batch end together
                await client.publish("ss:events:s", json.dumps({"sweep": "s", "ended": count, "points": 3}))
            sent += [chunk async for chunk in stream]
            return sent
        finally:
            await hub.aclose()
            await client.aclose()

    sync = redis.Redis.from_url(redis_server.url)
    with caplog.at_level(logging.WARNING, logger="app.events"):
        sent = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [json.loads(chunk.split(b"data: ", 1)[1])["status"] for chunk in sent] == ["running", "succeeded"]
    assert not caplog.records, "the hub kept its subscription through the burst"


def test_stream_slots_cap_each_key_separately() -> None:
    slots = StreamSlots(per_key=2)
    assert slots.try_acquire("alice") and slots.try_acquire("alice")
    assert not slots.try_acquire("alice")
    assert slots.try_acquire("bob")
    slots.release("alice")
    assert slots.try_acquire("alice")


def test_streams_of_one_sweep_share_one_read_of_its_points() -> None:
    async def scenario() -> tuple[list[object], int, int, int]:
        fetches = 0

        async def fetch() -> object:
            nonlocal fetches
            fetches += 1
            await asyncio.sleep(0.05)
            return {"read": fetches}

        shared = SharedReads(fresh_s=0.2)
        together = await asyncio.gather(*(shared.read("sweep", fetch) for _ in range(64)))
        once = fetches
        await shared.read("sweep", fetch)  # fresh: the same result
        fresh = fetches
        leaving = asyncio.ensure_future(shared.read("other", fetch))
        await asyncio.sleep(0.01)
        leaving.cancel()  # the reader goes away; the read goes on for those who come next
        await asyncio.sleep(0.3)
        after = await shared.read("sweep", fetch)
        return [*together, after], once, fresh, fetches

    results, once, fresh, total = asyncio.run(scenario())
    assert once == 1 and fresh == 1 and results[:64] == [{"read": 1}] * 64
    assert total == 3 and results[64] == {"read": 3}
