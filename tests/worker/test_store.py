"""The job store on a real Redis: records, the state machine, ownership and the in-flight limit."""

import asyncio
import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from app.redis_server import RedisServer
from worker.broker import QUEUE_KEY, TASK_NAME, UNACKED_INDEX_KEY, UNACKED_KEY, make_celery, points_message, task_message
from worker.settings import Settings
from worker.store import (
    LIVE_IDLE_TTL_S,
    LIVE_MAX_CHUNKS,
    LIVE_TTL_S,
    STATS_KEY,
    AsyncJobStore,
    Claim,
    InFlightLimit,
    JobStore,
    StorageQuota,
    Success,
    events_channel,
    live_key,
)


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[JobStore]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield JobStore(client, job_ttl_s=60, result_ttl_s=30)
    client.flushdb()  # the session's Redis is shared: no test leaves queue messages for another's worker


def new_job(store: JobStore, owner: str = "alice", steps: int = 10) -> str:
    return store.create(owner, b'{"request": 1}', steps, max_in_flight=100).id


def test_a_new_job_is_queued_with_its_request_and_owner(store: JobStore) -> None:
    job_id = new_job(store)
    job = store.get(job_id)
    assert (job.state, job.owner, job.steps_total, job.steps_done, job.attempts) == ("queued", "alice", 10, 0, 0)
    assert store.request_json(job_id) == b'{"request": 1}'
    assert store.redis.ttl(f"ss:job:{job_id}") == -1, "an unfinished job never expires"


def test_the_happy_path_and_its_timestamps(store: JobStore) -> None:
    job_id = new_job(store)
    assert store.start(job_id, "cpu")
    store.progress(job_id, 5, 10)
    assert store.get(job_id).steps_done == 5
    assert store.succeed(job_id, b"{}", b"npz", neuron_steps=100, wall_s=0.2)
    job = store.get(job_id)
    assert job.state == "succeeded" and job.device == "cpu" and job.attempts == 1
    assert job.created_at <= job.started_at <= job.finished_at
    assert store.result(job_id, "json") == b"{}" and store.result(job_id, "npz") == b"npz"
    assert 0 < store.redis.ttl(f"ss:job:{job_id}") <= 60 and 0 < store.redis.ttl(f"ss:job:{job_id}:result:npz") <= 30


def test_final_states_are_final(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, "cpu")
    store.fail(job_id, "boom")
    assert not store.start(job_id, "cpu")
    assert not store.succeed(job_id, b"{}", b"", 1, 0.1)
    assert not store.cancelled(job_id)
    job = store.get(job_id)
    assert job.state == "failed" and job.error == "boom"


def test_cancelling_a_queued_job_is_immediate_and_it_can_never_start(store: JobStore) -> None:
    job_id = new_job(store)
    assert store.request_cancel(job_id).state == "cancelled"
    assert not store.start(job_id, "cpu")


def test_cancelling_a_running_job_only_raises_the_flag(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, "cpu")
    job = store.request_cancel(job_id)
    assert job.state == "running" and job.cancel_requested and store.cancel_requested(job_id)


def test_a_second_start_waits_for_the_first_lease_to_lapse(store: JobStore) -> None:
    job_id = new_job(store)
    assert store.start(job_id, "cpu", token="first", lease_s=0.3)
    store.progress(job_id, 7, 10)
    assert not store.start(job_id, "cpu", token="second", lease_s=0.3), "never two runs at once"
    time.sleep(0.4)
    assert store.start(job_id, "cpu", token="second", lease_s=0.3), "the first worker is presumed dead"
    job = store.get(job_id)
    assert job.attempts == 2 and job.steps_done == 0 and job.state == "running"


def test_only_the_lease_holder_renews_it(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, "cpu", token="mine", lease_s=0.3)
    assert not store.renew_lease(job_id, "someone else", 5)
    assert store.renew_lease(job_id, "mine", 5)
    time.sleep(0.4)
    assert store.redis.exists(f"ss:lease:{job_id}"), "renewed for 5 s"
    store.release_lease(job_id, "someone else")
    assert store.redis.exists(f"ss:lease:{job_id}")
    store.release_lease(job_id, "mine")
    assert not store.redis.exists(f"ss:lease:{job_id}")


def test_orphans_with_lapsed_leases_go_back_to_the_queue_and_are_marked_for_a_new_message(store: JobStore) -> None:
    alive, dead, done = new_job(store), new_job(store), new_job(store)
    store.start(alive, "cpu", token="a", lease_s=30)
    store.start(dead, "cpu", token="b", lease_s=0.2)
    store.start(done, "cpu", token="c", lease_s=0.2)
    store.succeed(done, b"{}", b"", 1, 0.1)
    time.sleep(0.3)
    assert store.settle_orphans() == {dead: "queued"}
    assert store.settle_orphans() == {}, "requeued once"
    assert store.to_resend() == [dead]
    assert [store.get(j).state for j in (alive, dead, done)] == ["running", "queued", "succeeded"]
    assert store.active_counts() == {"queued": 1, "running": 1}
    assert store.start(dead, "cpu", token="d", lease_s=5) and store.get(dead).attempts == 2
    assert store.to_resend() == [], "a started job needs no message"


def die(store: JobStore, job_id: str) -> None:
    """A worker starts the job and dies at once: its short lease lapses."""
    assert store.start(job_id, "cpu", token="doomed", lease_s=0.05)
    time.sleep(0.1)


def test_a_job_whose_worker_dies_on_every_attempt_fails_with_the_reason(store: JobStore) -> None:
    job_id = new_job(store)
    die(store, job_id)
    assert store.settle_orphans() == {job_id: "queued"}  # the reaper finds the first death
    die(store, job_id)
    die(store, job_id)  # the next claim finds the second death and starts the third attempt
    assert store.claim(job_id, "cpu", "fourth", lease_s=5) == Claim(started=False, state="failed")
    job = store.get(job_id)
    assert (job.state, job.attempts) == ("failed", 3)
    assert job.error == "the worker died 3 times while running this job (out of memory or killed)"
    assert store.to_resend() == [] and store.active_counts() == {"queued": 0, "running": 0}
    assert 0 < store.redis.ttl(f"ss:job:{job_id}") <= 60, "a failed job expires like any finished one"


def test_a_run_that_lasted_past_the_time_limit_fails_instead_of_running_again(store: JobStore) -> None:
    store.time_limit_s = 0.3
    job_id = new_job(store)
    store.start(job_id, "cpu", token="slow", lease_s=0.5)
    time.sleep(0.35)
    assert store.renew_lease(job_id, "slow", 0.1)  # seen alive 0.35 s after its start; then killed
    time.sleep(0.15)
    assert store.settle_orphans() == {job_id: "failed"}
    assert store.get(job_id).error == "time limit of 0.3 s exceeded"


def test_a_cancel_of_a_job_whose_worker_died_is_carried_out_when_its_lease_lapses(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, "cpu", token="dead worker", lease_s=0.2)
    assert store.request_cancel(job_id).state == "running"  # only the flag, for now
    time.sleep(0.3)
    assert store.settle_orphans() == {job_id: "cancelled"}
    requeued = new_job(store)
    die(store, requeued)
    store.settle_orphans()
    assert store.request_cancel(requeued).state == "cancelled", "a requeued job is queued: cancelled at once"
    assert store.to_resend() == []


def test_the_request_as_submitted_is_kept_beside_the_one_that_runs(store: JobStore) -> None:
    job_id = store.create("alice", b'{"network": {"layers": []}}', 10, 100, submitted=b'{"network": {"nir": "..."}}').id
    assert store.request_json(job_id) == b'{"network": {"nir": "..."}}'
    assert store.claim(job_id, "cpu", "t", 5).request == b'{"network": {"layers": []}}'
    store.fail(job_id, "no")
    assert 0 < store.redis.ttl(f"ss:job:{job_id}:submitted") <= 60


def test_jobs_in_flight_per_owner_are_limited(store: JobStore) -> None:
    for _ in range(3):
        store.create("carol", b"{}", 1, max_in_flight=3)
    with pytest.raises(InFlightLimit):
        store.create("carol", b"{}", 1, max_in_flight=3)
    store.create("dave", b"{}", 1, max_in_flight=3)  # another owner is not affected
    first = store.list_owned("carol", 0, 10)[0][-1].id
    store.request_cancel(first)
    store.create("carol", b"{}", 1, max_in_flight=3)  # a finished job frees its slot


def test_listing_is_per_owner_newest_first_and_paginated(store: JobStore) -> None:
    ids = [new_job(store, "alice") for _ in range(5)]
    new_job(store, "bob")
    page, total = store.list_owned("alice", 0, 3)
    assert total == 5 and [job.id for job in page] == ids[::-1][:3]
    page, _ = store.list_owned("alice", 3, 3)
    assert [job.id for job in page] == ids[::-1][3:]


def test_the_async_reader_sees_what_the_store_wrote(store: JobStore, redis_server: RedisServer) -> None:
    job_id = new_job(store, "alice")
    store.start(job_id, "cpu")
    store.succeed(job_id, b'{"r": 1}', b"npz", neuron_steps=10, wall_s=0.1)

    async def read() -> tuple:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            reader = AsyncJobStore(client)
            return (
                await reader.get(job_id),
                await reader.state(job_id),
                await reader.get_with_result(job_id, "json", first_bytes=3),
                await reader.result_range(job_id, "json", 3, 8),
                await reader.get("0" * 32),
                await reader.get_with_result("0" * 32, "npz", first_bytes=3),
            )
        finally:
            await client.aclose()

    job, state, (with_result, head, size), rest, unknown, unknown_with_result = asyncio.run(read())
    assert job == store.get(job_id) == with_result and state == "succeeded" == job.state
    assert (head, size, rest) == (b'{"r', 8, b'": 1}')
    assert unknown is None and unknown_with_result == (None, None, 0)


def test_transitions_publish_events_in_order(store: JobStore) -> None:
    job_id = new_job(store)
    pubsub = store.redis.pubsub()
    pubsub.subscribe(events_channel(job_id))
    pubsub.get_message(timeout=1)
    store.start(job_id, "cpu")
    store.progress(job_id, 4, 10)
    store.progress(job_id, 10, 10)
    store.succeed(job_id, b"{}", b"", 10, 0.01)
    events = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        events.append(json.loads(message["data"]))
    assert [(e["status"], e["steps_done"]) for e in events] == [
        ("running", 0),
        ("running", 4),
        ("running", 10),
        ("succeeded", 10),
    ]


def test_counters_for_metrics(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, "cpu")
    assert store.active_counts() == {"queued": 0, "running": 1}
    store.succeed(job_id, b"{}", b"", neuron_steps=1234, wall_s=0.3)
    stats = store.stats()
    assert stats["neuron_steps"] == 1234 and stats["entered:succeeded"] == 1 and stats["duration_count"] == 1
    assert stats["duration_in:0.5"] == 1 and stats.keys().isdisjoint({"duration_in:0.1", "duration_in:1.0"})
    assert store.redis.exists(STATS_KEY)


def test_a_claim_starts_the_job_and_hands_over_its_request(store: JobStore) -> None:
    job_id = store.create("alice", b'{"request": 7}', 10, max_in_flight=100).id
    claim = store.claim(job_id, "cpu", "token", lease_s=5)
    assert claim == Claim(started=True, state="running", request=b'{"request": 7}')
    assert store.claim(job_id, "cpu", "other", lease_s=5) == Claim(started=False, state="running")
    assert store.claim("0" * 32, "cpu", "token", lease_s=5) == Claim(started=False, state=None)


def test_a_claim_takes_one_round_trip_and_survives_a_redis_that_lost_its_scripts(store: JobStore) -> None:
    assert store.claim(new_job(store), "cpu", "token", lease_s=5).started  # the script loaded, if it was not
    first = new_job(store)

    def calls() -> dict[str, int]:
        stats = store.redis.info("commandstats")
        return {name: stats[name]["calls"] for name in stats if name.startswith(("cmdstat_evalsha", "cmdstat_script"))}

    before = calls()
    assert store.claim(first, "cpu", "token", lease_s=5).started
    after = calls()
    evalsha = after.pop("cmdstat_evalsha") - before.pop("cmdstat_evalsha", 0)
    assert evalsha == 1 and after == before, "the claim is one EVALSHA and nothing else"
    store.redis.script_flush()  # as after a restart of Redis
    second, third = new_job(store), new_job(store)
    claims = store.claim_many([second, third], "cpu", ["a", "b"], lease_s=5)
    assert [claim.started for claim in claims] == [True, True]
    assert store.get(second).state == store.get(third).state == "running"
    assert store.get(second).attempts == 1, "the refused first try changed nothing"


def test_a_claim_is_refused_once_a_cancel_was_requested(store: JobStore) -> None:
    job_id = new_job(store)
    store.redis.hset(f"ss:job:{job_id}", "cancel", "1")  # a cancel raced the queue message
    assert store.claim(job_id, "cpu", "first", lease_s=5) == Claim(started=False, state="queued", cancel_requested=True)
    dead = new_job(store)
    store.start(dead, "cpu", token="dead worker", lease_s=0.2)
    store.request_cancel(dead)  # running: only the flag is raised
    time.sleep(0.3)  # the first worker's lease lapses: the claim settles the dead run first
    assert store.claim(dead, "cpu", "second", lease_s=5) == Claim(started=False, state="cancelled")


def queued_with_message(store: JobStore, message: Callable[[str], bytes] | None = None) -> str:
    app = make_celery(Settings())
    return store.create("alice", b'{"request": 1}', 10, 100, message=message or (lambda job_id: task_message(app, job_id))).id


def test_a_worker_takes_the_oldest_job_message_and_claims_its_job_in_one_step(store: JobStore) -> None:
    first, second = queued_with_message(store), queued_with_message(store)
    started = Claim(started=True, state="running", request=b'{"request": 1}')
    assert store.take_next(TASK_NAME, "cpu", "token", 5) == (first, started)
    assert store.get(first).state == "running" and store.redis.get(f"ss:lease:{first}") == b"token"
    assert store.redis.llen(QUEUE_KEY) == 1, "the taken message is gone; the next one waits"
    assert store.take_next(TASK_NAME, "cpu", "other", 5)[0] == second
    assert store.take_next(TASK_NAME, "cpu", "more", 5) is None, "an empty queue"


def test_a_message_of_another_kind_stays_first_in_the_queue(store: JobStore) -> None:
    app = make_celery(Settings())
    points = queued_with_message(store, lambda job_id: points_message(app, [job_id, "f" * 32]))
    behind = queued_with_message(store)
    before = store.redis.lrange(QUEUE_KEY, 0, -1)
    assert store.take_next(TASK_NAME, "cpu", "token", 5) is None
    assert store.redis.lrange(QUEUE_KEY, 0, -1) == before, "nothing taken, nothing reordered"
    assert store.get(points).state == store.get(behind).state == "queued"
    store.redis.rpush(QUEUE_KEY, b"not json")  # whatever it is, it is not taken here
    assert store.take_next(TASK_NAME, "cpu", "token", 5) is None and store.redis.rpop(QUEUE_KEY) == b"not json"


def test_a_taken_message_whose_job_may_not_start_is_refused_as_a_claim_is(store: JobStore) -> None:
    cancelled = queued_with_message(store)
    store.redis.hset(f"ss:job:{cancelled}", "cancel", "1")
    refused = Claim(started=False, state="queued", cancel_requested=True)
    assert store.take_next(TASK_NAME, "cpu", "token", 5) == (cancelled, refused)
    assert store.redis.llen(QUEUE_KEY) == 0 and store.redis.get(f"ss:lease:{cancelled}") is None


def test_several_successes_are_stored_in_one_round_trip_each_on_its_own_terms(store: JobStore) -> None:
    first, cancelled, third = new_job(store), new_job(store), new_job(store)
    for job_id in (first, cancelled, third):
        store.claim(job_id, "cpu", f"lease of {job_id}", lease_s=5)
    store.request_cancel(cancelled)
    store.cancelled(cancelled)  # ended meanwhile: its success is refused, the others stored
    store.redis.script_flush()  # as after a restart of Redis
    successes = [Success(job_id, b"{}", job_id.encode(), 10, 0.01, f"lease of {job_id}") for job_id in (first, cancelled, third)]
    assert store.succeed_many(successes) == [True, False, True]
    assert [store.get(job_id).state for job_id in (first, cancelled, third)] == ["succeeded", "cancelled", "succeeded"]
    assert store.result(third, "npz") == third.encode() and store.result(cancelled, "npz") is None
    assert not store.redis.exists(f"ss:job:{first}:lease"), "each lease is released"


def test_success_stores_results_statistics_and_expiry_and_releases_the_lease(store: JobStore) -> None:
    job_id = new_job(store, steps=10)
    store.claim(job_id, "cpu", "mine", lease_s=5)
    assert store.succeed(job_id, b"{}", b"npz", neuron_steps=10, wall_s=0.02, lease_token="mine")
    job = store.get(job_id)
    assert job.state == "succeeded" and job.steps_done == 10 and job.finished_at is not None
    assert store.result(job_id, "npz") == b"npz" and store.redis.exists(f"ss:lease:{job_id}") == 0
    assert 0 < store.redis.ttl(f"ss:job:{job_id}") <= 60 and 0 < store.redis.ttl(f"ss:job:{job_id}:result:json") <= 30
    stats = store.stats()
    assert stats["duration_in:0.05"] == 1 and stats.keys().isdisjoint({"duration_in:0.01", "duration_in:0.1"})
    assert not store.succeed("0" * 32, b"{}", b"npz", neuron_steps=1, wall_s=0.1), "an unknown job is not moved"


def test_jobs_of_one_owner_can_be_given_to_another(store: JobStore) -> None:
    old = [new_job(store, "anonymous") for _ in range(3)]
    store.start(old[0], "cpu")
    new_job(store, "bob")
    assert store.reassign("anonymous", "key-bob") == 3
    assert {job.id for job in store.list_owned("key-bob", 0, 10)[0]} == set(old)
    assert store.owned_count("anonymous") == 0 and store.get(old[1]).owner == "key-bob"
    assert store.redis.smembers("ss:owner:key-bob:active") == {i.encode() for i in old}
    store.fail(old[1], "no")  # the new owner's active set is kept as jobs end
    assert store.redis.scard("ss:owner:key-bob:active") == 2


def test_a_job_and_its_queue_message_are_written_together(store: JobStore) -> None:
    job_id = store.create("alice", b"{}", 1, max_in_flight=1, message=lambda job_id: f"message of {job_id}".encode()).id
    assert store.redis.lrange(QUEUE_KEY, 0, -1) == [f"message of {job_id}".encode()]
    with pytest.raises(InFlightLimit):
        store.create("alice", b"{}", 1, max_in_flight=1, message=lambda job_id: b"refused")
    assert store.redis.llen(QUEUE_KEY) == 1, "a refused job leaves no message behind"


def test_live_chunks_form_a_stream_that_a_rerun_restarts_and_the_end_expires(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id, "cpu")
    store.live_chunk(job_id, 0, b'{"chunk": 0}')
    store.live_chunk(job_id, 10, b'{"chunk": 1}')
    store.live_chunk(job_id, 0, b'{"chunk": "rerun"}')  # a requeued job starts over
    entries = store.redis.xrange(live_key(job_id))
    assert [fields[b"chunk"] for _, fields in entries] == [b'{"chunk": "rerun"}']
    assert 0 < store.redis.ttl(live_key(job_id)) <= LIVE_IDLE_TTL_S
    store.succeed(job_id, b"{}", b"", 1, 0.1)
    assert 0 < store.redis.ttl(live_key(job_id)) <= LIVE_TTL_S, "kept a minute for readers still draining"


def test_the_stream_keeps_the_newest_chunks_only(store: JobStore) -> None:
    job_id = new_job(store)
    for step in range(LIVE_MAX_CHUNKS + 5):
        store.live_chunk(job_id, step, str(step).encode())
    chunks = [fields[b"chunk"] for _, fields in store.redis.xrange(live_key(job_id))]
    assert chunks == [str(step).encode() for step in range(5, LIVE_MAX_CHUNKS + 5)]


def test_the_reader_returns_the_chunks_after_an_id(store: JobStore, redis_server: RedisServer) -> None:
    job_id = new_job(store)
    for step in range(3):
        store.live_chunk(job_id, step, str(step).encode())

    async def read() -> tuple[list, list, list]:
        client = aioredis.Redis.from_url(redis_server.url)
        reader = AsyncJobStore(client)
        everything = await reader.live_after(job_id, "0")
        after_first = await reader.live_after(job_id, everything[0][0])
        after_last = await reader.live_after(job_id, everything[-1][0])
        await client.aclose()
        return everything, after_first, after_last

    everything, after_first, after_last = asyncio.run(read())
    assert [chunk for _, chunk in everything] == [b"0", b"1", b"2"]
    assert after_first == everything[1:] and after_last == []


def new_sweep(store: JobStore, points: int = 3, owner: str = "alice", max_in_flight: int = 100) -> tuple[str, list[str]]:
    messages: list[str] = []
    sweep = store.create_sweep(
        owner,
        b'{"sweep": 1}',
        "grid",
        [(f'{{"point": {i}}}'.encode(), 10 + i, False) for i in range(points)],
        max_in_flight,
        lambda job_ids: messages.extend(job_ids) or job_ids[0].encode(),
    )
    return sweep.id, messages


def test_a_sweep_queues_its_points_as_jobs_with_their_messages_in_one_step(store: JobStore) -> None:
    sweep_id, job_ids = new_sweep(store)
    assert [raw.decode() for raw in store.redis.lrange(f"ss:sweep:{sweep_id}:points", 0, -1)] == job_ids
    assert sorted(store.redis.lrange(QUEUE_KEY, 0, -1)) == sorted(job_id.encode() for job_id in job_ids)
    for index, job_id in enumerate(job_ids):
        job = store.get(job_id)
        assert (job.state, job.owner, job.steps_total) == ("queued", "alice", 10 + index)
        assert store.request_json(job_id) == f'{{"point": {index}}}'.encode()
    assert store.list_owned("alice", 0, 10) == ([], 0), "points stay out of the owner's job list"
    assert store.redis.scard("ss:owner:alice:active") == 0, "and out of the job limit"
    assert int(store.redis.get("ss:owner:alice:sweep_points")) == 3


def test_points_that_end_are_counted_once_and_the_last_one_ends_the_sweep(store: JobStore) -> None:
    sweep_id, (first, second, third) = new_sweep(store)
    store.start(first, "cpu")
    store.succeed(first, b"{}", b"", 1, 0.1, summary=b'{"out": {"spikes": 2, "rate_hz": 1.0}}')
    store.fail(first, "late failure")  # final states are final: not counted again
    store.start(second, "cpu")
    store.fail(second, "boom")
    (sweep,), total = store.list_sweeps("alice", 0, 10)
    assert total == 1 and sweep.id == sweep_id and not sweep.is_final
    assert sweep.ended == {"succeeded": 1, "failed": 1, "cancelled": 0}
    assert store.redis.hget(f"ss:job:{first}", "summary") == b'{"out": {"spikes": 2, "rate_hz": 1.0}}'
    assert store.redis.ttl(f"ss:sweep:{sweep_id}") == -1
    store.request_cancel(third)
    (sweep,), _ = store.list_sweeps("alice", 0, 10)
    assert sweep.is_final and sweep.finished_at is not None and sweep.ended["cancelled"] == 1
    assert 0 < store.redis.ttl(f"ss:sweep:{sweep_id}") <= 60 and 0 < store.redis.ttl(f"ss:sweep:{sweep_id}:points") <= 60
    assert int(store.redis.get("ss:owner:alice:sweep_points")) == 0


def test_unfinished_sweep_points_per_key_are_limited(store: JobStore) -> None:
    new_sweep(store, points=3, max_in_flight=5)
    with pytest.raises(InFlightLimit):
        new_sweep(store, points=3, max_in_flight=5)
    assert store.list_sweeps("alice", 0, 10)[1] == 1 and store.redis.llen(QUEUE_KEY) == 3, "a refused sweep leaves nothing"
    new_sweep(store, points=3, owner="bob", max_in_flight=5)


def test_cancelling_a_sweep_cancels_queued_points_at_once_and_flags_running_ones(store: JobStore) -> None:
    sweep_id, (done, running, queued) = new_sweep(store)
    store.start(done, "cpu")
    store.succeed(done, b"{}", b"", 1, 0.1)
    store.start(running, "cpu")
    assert store.cancel_sweep(sweep_id)
    assert [store.get(job_id).state for job_id in (done, running, queued)] == ["succeeded", "running", "cancelled"]
    assert store.cancel_requested(running)
    store.cancelled(running)  # its worker stops at the next chunk
    (sweep,), _ = store.list_sweeps("alice", 0, 10)
    assert sweep.is_final and sweep.cancel_requested and sweep.ended == {"succeeded": 1, "failed": 0, "cancelled": 2}
    assert not store.cancel_sweep("unknown")


def taken_by_a_worker(store: JobStore, message: bytes, tag: str, taken_at: float) -> None:
    """What kombu's Redis transport records when a worker takes a message from the queue."""
    store.redis.zadd(UNACKED_INDEX_KEY, {tag: taken_at})
    store.redis.hset(UNACKED_KEY, tag, json.dumps([json.loads(message), "", QUEUE_KEY]))


def test_a_message_taken_by_a_worker_that_died_before_starting_its_job_goes_back_to_the_queue(store: JobStore) -> None:
    from worker.broker import make_celery, points_message, task_message
    from worker.settings import Settings

    app = make_celery(Settings(redis_url="redis://127.0.0.1:1/0"))  # builds messages only
    lost, started, fresh = new_job(store), new_job(store), new_job(store)
    _, points = new_sweep(store)
    store.redis.delete(QUEUE_KEY)
    store.start(started, "cpu")
    taken_by_a_worker(store, task_message(app, lost), "tag-lost", time.time() - 60)
    taken_by_a_worker(store, task_message(app, started), "tag-started", time.time() - 60)
    taken_by_a_worker(store, task_message(app, fresh), "tag-fresh", time.time())
    taken_by_a_worker(store, points_message(app, points), "tag-points", time.time() - 60)
    store.redis.hset(UNACKED_KEY, "tag-other", json.dumps([{"body": "not ours"}, "", QUEUE_KEY]))
    store.redis.zadd(UNACKED_INDEX_KEY, {"tag-other": 0})
    assert sorted(store.restore_untaken(older_than_s=20)) == sorted([lost, *points])
    requeued = [json.loads(raw) for raw in store.redis.lrange(QUEUE_KEY, 0, -1)]
    assert sorted(message["headers"]["id"] for message in requeued) == sorted([lost, points[0]])
    assert set(store.redis.hkeys(UNACKED_KEY)) == {b"tag-started", b"tag-fresh", b"tag-other"}
    assert store.restore_untaken(older_than_s=20) == [], "once"
    # a killed batch's message: its points were started after it was taken, then requeued with
    # messages of their own; it is dropped, not run again
    store.redis.delete(QUEUE_KEY)
    store.start(points[0], "cpu")
    store.redis.hset(f"ss:job:{points[0]}", "state", "queued")  # as the reaper leaves it
    store.redis.srem("ss:state:running", points[0])
    taken_by_a_worker(store, points_message(app, points), "tag-batch", float(store.get(points[0]).started_at) - 1)
    assert store.restore_untaken(older_than_s=0) == [fresh], "the fresh one, old enough now; not the batch"
    assert not store.redis.hexists(UNACKED_KEY, "tag-batch")
    assert [json.loads(raw)["headers"]["id"] for raw in store.redis.lrange(QUEUE_KEY, 0, -1)] == [fresh]


def test_sweeps_of_one_owner_are_given_to_another_with_their_points(store: JobStore) -> None:
    sweep_id, points = new_sweep(store, owner="anonymous")
    store.start(points[0], "cpu")
    store.succeed(points[0], b"{}", b"", 1, 0.1)
    store.reassign("anonymous", "key-bob")
    (sweep,), _ = store.list_sweeps("key-bob", 0, 10)
    assert sweep.id == sweep_id and sweep.owner == "key-bob" and store.list_sweeps("anonymous", 0, 10) == ([], 0)
    assert {store.get(point).owner for point in points} == {"key-bob"}
    assert int(store.redis.get("ss:owner:key-bob:sweep_points")) == 2, "the unfinished points count for the new owner"
    store.cancel_sweep(sweep_id)
    assert int(store.redis.get("ss:owner:key-bob:sweep_points")) == 0 and not store.redis.exists(
        "ss:owner:anonymous:sweep_points"
    )


def test_a_job_with_live_layers_says_so_in_its_record(store: JobStore) -> None:
    assert store.create("alice", b"{}", 1, max_in_flight=10, live=True).live and not store.get(new_job(store)).live
    assert store.get(store.create("alice", b"{}", 1, max_in_flight=10, live=True).id).live
    _, points = new_sweep(store)
    sweep = store.create_sweep("alice", b"{}", "grid", [(b"{}", 1, True), (b"{}", 1, False)], 100, lambda ids: b"m")
    live_points = [raw.decode() for raw in store.redis.lrange(f"ss:sweep:{sweep.id}:points", 0, -1)]
    assert [store.get(point).live for point in live_points] == [True, False] and not store.get(points[0]).live


# --- what each key keeps in the store ---------------------------------------------------------------


def test_a_keys_requests_and_results_count_against_its_quota_until_purged(store: JobStore) -> None:
    request = b'{"request": "' + b"x" * 985 + b'"}'  # 1,000 bytes
    first = store.create("alice", request, 1, max_in_flight=100, quota=2500).id
    store.create("alice", request, 1, max_in_flight=100, quota=2500)
    assert store.stored_bytes("alice") == 2000 and store.stored_bytes("bob") == 0
    with pytest.raises(StorageQuota, match=r"keeps 2,000 bytes .* adds 1,000: over its quota of 2,500 bytes"):
        store.create("alice", request, 1, max_in_flight=100, quota=2500)
    store.create("bob", request, 1, max_in_flight=100, quota=2500)  # every key has its own
    assert store.start(first, "cpu") and store.succeed(first, b"j" * 300, b"n" * 200, 1, 0.1)
    assert store.stored_bytes("alice") == 2500  # its results too
    assert store.purge(first) == "purged"
    assert store.stored_bytes("alice") == 1000
    assert store.get(first) is None and store.result(first, "npz") is None and store.request_json(first) is None
    assert store.list_owned("alice", 0, 10)[1] == 1


def test_only_finished_jobs_are_purged_and_a_sweeps_points_go_with_their_sweep(store: JobStore) -> None:
    job_id = new_job(store)
    assert store.purge(job_id) == "not final" and store.purge("f" * 32) == "unknown"
    sweep = store.create_sweep("alice", b"{}", "grid", [(b"{1}", 1, False), (b"{2}", 1, False)], 100, lambda ids: b"m")
    assert store.stored_bytes("alice") == len(b'{"request": 1}') + 2 + 3 + 3
    assert store.purge_sweep(sweep.id) == "not final"
    points = [raw.decode() for raw in store.redis.lrange(f"ss:sweep:{sweep.id}:points", 0, -1)]
    assert store.purge(points[0]) == "in a sweep"
    store.cancel_sweep(sweep.id)
    assert store.purge_sweep(sweep.id) == "purged"
    assert store.get(points[0]) is None and store.redis.exists(f"ss:sweep:{sweep.id}") == 0
    assert store.stored_bytes("alice") == len(b'{"request": 1}') and store.list_sweeps("alice", 0, 10)[1] == 0


def test_what_expires_is_taken_off_the_keys_total(store: JobStore) -> None:
    short = JobStore(store.redis, job_ttl_s=1, result_ttl_s=1)
    job_id = short.create("alice", b"x" * 100, 1, max_in_flight=100).id
    assert short.start(job_id, "cpu") and short.succeed(job_id, b"j" * 10, b"n" * 10, 1, 0.1)
    assert short.stored_bytes("alice") == 120
    time.sleep(1.2)
    assert short.stored_bytes("alice") == 0
    assert short.get(job_id) is None  # Redis expired the records at the same time


def test_a_keys_stored_bytes_move_with_its_jobs_to_another_key(store: JobStore) -> None:
    store.create("anonymous", b"x" * 100, 1, max_in_flight=100)
    store.create_sweep("anonymous", b"y" * 10, "grid", [(b"{}", 1, False)], 100, lambda ids: b"m")
    store.reassign("anonymous", "alice")
    assert store.stored_bytes("alice") == 112 and store.stored_bytes("anonymous") == 0
