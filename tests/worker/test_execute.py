"""execute_job, the logic behind the Celery task, in-process against a real Redis."""

import json
import pathlib
import re
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from celery.exceptions import SoftTimeLimitExceeded

from app.redis_server import RedisServer
from tests.helpers import assert_same_recordings
from worker.broker import QUEUE_KEY, make_celery, points_message, task_message
from worker.execute import Lease, execute_job, execute_points, execute_queued
from worker.settings import Settings
from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate
from worker.store import JobStore

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[JobStore]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield JobStore(client)
    client.flushdb()  # the session's Redis is shared: no test leaves queue messages for another's worker


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return Settings(redis_url=redis_server.url)


def submit(store: JobStore, request: dict | bytes) -> str:
    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    return store.create("alice", body, parse_request(body)[1].steps, max_in_flight=100).id


def test_a_job_runs_and_stores_the_runner_result(store: JobStore, settings: Settings) -> None:
    body = (EXAMPLES / "izhikevich_tonic_bursting.json").read_bytes()
    job_id = submit(store, body)
    assert execute_job(store, job_id, settings, device="cpu") == "succeeded"
    job = store.get(job_id)
    assert job.device == "cpu" and job.steps_done == job.steps_total == 2000
    stored = Result.from_npz(store.result(job_id, "npz"))
    local = simulate(*parse_request(body))
    for name, layer in local.layers.items():
        assert (stored.layers[name].times == layer.times).all() and (stored.layers[name].voltages == layer.voltages).all()
    assert Result.from_json(store.result(job_id, "json")).layers.keys() == local.layers.keys()


def test_running_a_finished_job_again_changes_nothing(store: JobStore, settings: Settings) -> None:
    job_id = submit(store, json.loads((EXAMPLES / "seed.json").read_text()))
    execute_job(store, job_id, settings, device="cpu")
    finished = store.get(job_id)
    assert execute_job(store, job_id, settings, device="cpu") == "succeeded"
    assert store.get(job_id) == finished


def test_a_job_cancelled_while_queued_never_starts(store: JobStore, settings: Settings) -> None:
    job_id = submit(store, json.loads((EXAMPLES / "seed.json").read_text()))
    store.request_cancel(job_id)
    assert execute_job(store, job_id, settings, device="cpu") == "cancelled"
    job = store.get(job_id)
    assert job.started_at is None and job.attempts == 0 and store.result(job_id, "json") is None


def test_a_cancel_flag_stops_a_running_job_at_its_next_chunk(store: JobStore, settings: Settings) -> None:
    job_id = submit(store, json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text()))
    original = store.progress

    def progress_then_cancel(job: str, done: int, total: int) -> None:
        original(job, done, total)
        if done == 1000:
            store.redis.hset(f"ss:job:{job}", "cancel", "1")

    store.progress = progress_then_cancel  # type: ignore[method-assign]
    assert execute_job(store, job_id, settings, device="cpu") == "cancelled"
    assert store.get(job_id).steps_done == 1000  # the example's 2,000 steps are two chunks


def test_a_diverging_simulation_fails_with_a_readable_error(store: JobStore, settings: Settings) -> None:
    request = json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text())
    request["network"]["layers"][0]["params"] = {"sq": 5.0, "v_th": 1e30}
    job_id = submit(store, request)
    assert execute_job(store, job_id, settings, device="cpu") == "failed"
    assert "non-finite voltage" in store.get(job_id).error


def test_a_request_over_the_workers_limits_fails_with_the_reason(store: JobStore, redis_server: RedisServer) -> None:
    job_id = store.create("alice", (EXAMPLES / "izhikevich_tonic_bursting.json").read_bytes(), 2000, max_in_flight=100).id
    strict = Settings(redis_url=redis_server.url, max_steps=100)
    assert execute_job(store, job_id, strict, device="cpu") == "failed"
    assert store.get(job_id).error == "invalid request: input: 2000 steps are over the limit of 100"


@pytest.mark.parametrize(
    ("stage", "error", "reason"),
    [
        ("to_json", MemoryError(), "the job ran out of memory on cpu while encoding the result"),
        ("to_npz", RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
         "the job ran out of memory on cpu while encoding the result"),
        ("to_json", SoftTimeLimitExceeded(), "time limit of 3600 s exceeded"),
        ("to_dict", KeyError("layers"),
         "internal error while encoding the result (KeyError); the operators have the details in the log"),
    ],
)  # fmt: skip
def test_an_error_after_the_simulation_fails_the_job_once_with_its_reason(
    store: JobStore, settings: Settings, monkeypatch: pytest.MonkeyPatch, stage: str, error: Exception, reason: str
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(Result, stage, broken)
    job_id = submit(store, json.loads((EXAMPLES / "seed.json").read_text()))
    assert execute_job(store, job_id, settings, device="cpu") == "failed"
    job = store.get(job_id)
    assert (job.state, job.error, job.attempts) == ("failed", reason, 1)
    assert execute_job(store, job_id, settings, device="cpu") == "failed", "a redelivered message changes nothing"
    assert store.stats()["entered:failed"] == 1


def test_an_error_while_storing_fails_the_job_with_its_reason(
    store: JobStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise redis.ResponseError("Protocol error: invalid bulk length")

    monkeypatch.setattr(JobStore, "succeed_many", refused)
    job_id = submit(store, json.loads((EXAMPLES / "seed.json").read_text()))
    assert execute_job(store, job_id, settings, device="cpu") == "failed"
    assert (
        store.get(job_id).error
        == "internal error while storing the result (ResponseError); the operators have the details in the log"
    )


def test_a_result_too_large_to_store_fails_with_its_sizes(store: JobStore, redis_server: RedisServer) -> None:
    """Validation bounds every result by the limit already; this is the check behind it, should
    an encoding ever exceed its bound."""
    settings = Settings(redis_url=redis_server.url, max_result_bytes=2000)
    settings.__dict__["limits"] = settings.limits.model_copy(update={"max_result_bytes": 10**9})  # validation lets it pass
    job_id = submit(store, json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text()))
    assert execute_job(store, job_id, settings, device="cpu") == "failed"
    error = store.get(job_id).error
    assert re.fullmatch(
        r"the result is too large to store \(\d+ bytes as JSON, \d+ bytes as NPZ; the limit is 2000 bytes\): "
        r"record fewer layers, neurons or steps, or set a lower record.max_spike_events",
        error,
    ), error


def test_a_run_over_its_time_limit_fails_with_the_reason(store: JobStore, redis_server: RedisServer) -> None:
    settings = Settings(redis_url=redis_server.url, soft_time_limit_s=1, hard_time_limit_s=2)
    request = json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text())
    request["input"]["steps"] = 100_000
    job_id = submit(store, request)
    started = time.monotonic()
    assert execute_job(store, job_id, settings, device="cpu") == "failed"
    assert time.monotonic() - started < 2
    assert store.get(job_id).error == "time limit of 1 s exceeded"


def test_an_unknown_job_is_ignored(store: JobStore, settings: Settings) -> None:
    assert execute_job(store, "f" * 32, settings, device="cpu") == "unknown"


def test_a_job_that_loses_its_lease_stops_without_touching_the_record(store: JobStore, redis_server: RedisServer) -> None:
    """If another worker took the job over, this one must neither finish nor cancel it."""
    settings = Settings(redis_url=redis_server.url, lease_s=0.4)
    request = json.loads((EXAMPLES / "izhikevich_tonic_bursting.json").read_text())
    request["input"]["steps"] = 30_000  # chunks to go after the takeover, until the lease keeper notices
    job_id = submit(store, request)
    original = store.progress

    def progress_then_lose_the_lease(job: str, done: int, total: int) -> None:
        original(job, done, total)
        if done == 1000:
            store.redis.set(f"ss:lease:{job}", "another worker")

    store.progress = progress_then_lose_the_lease  # type: ignore[method-assign]
    assert execute_job(store, job_id, settings, device="cpu") == "lease lost"
    job = store.get(job_id)
    assert job.state == "running" and store.result(job_id, "json") is None
    assert store.redis.get(f"ss:lease:{job_id}") == b"another worker", "the new owner's lease is left alone"


def test_a_job_is_not_run_while_another_worker_holds_it(store: JobStore, settings: Settings) -> None:
    job_id = submit(store, json.loads((EXAMPLES / "seed.json").read_text()))
    assert store.start(job_id, "cpu", token="other worker", lease_s=30)
    assert execute_job(store, job_id, settings, device="cpu") == "running"
    assert store.get(job_id).attempts == 1


def test_the_lease_keeper_renews_a_held_lease_and_exit_releases_it(store: JobStore) -> None:
    earlier = submit(store, json.loads((EXAMPLES / "seed.json").read_text()))
    with Lease(store, earlier, 20.0):  # the keeper now sleeps until this lease's renewal, 5 s away
        pass
    job_id = submit(store, json.loads((EXAMPLES / "seed.json").read_text()))
    lease = Lease(store, job_id, 0.4)  # ... and must wake early for this one
    assert store.start(job_id, "cpu", lease.token, 0.4)
    with lease:
        time.sleep(1.2)  # three lease lengths: only renewals keep it
        assert store.redis.get(f"ss:lease:{job_id}") == lease.token.encode() and not lease.lost
    assert store.redis.get(f"ss:lease:{job_id}") is None


# --- jobs taken straight from the queue after a task's own ------------------------------------------


def queued(store: JobStore, request: dict, message: Callable[[str], bytes] | None = None) -> str:
    body = json.dumps(request).encode()
    app = make_celery(Settings())
    message = message or (lambda job_id: task_message(app, job_id))
    return store.create("alice", body, parse_request(body)[1].steps, max_in_flight=100, message=message).id


def test_the_jobs_queued_next_run_from_the_queue_each_once(store: JobStore, settings: Settings) -> None:
    seed = json.loads((EXAMPLES / "seed.json").read_text())
    job_ids = [queued(store, {**seed, "seed": k}) for k in range(5)]
    assert execute_queued(store, settings, 60, device="cpu") == dict.fromkeys(job_ids, "succeeded")
    assert store.redis.llen(QUEUE_KEY) == 0, "their messages were taken"
    for job_id in job_ids:
        job = store.get(job_id)
        assert (job.state, job.attempts) == ("succeeded", 1) and store.redis.get(f"ss:lease:{job_id}") is None
    alone = submit(store, seed)
    execute_job(store, alone, settings, device="cpu")
    assert_same_recordings(Result.from_npz(store.result(job_ids[0], "npz")), Result.from_npz(store.result(alone, "npz")))


def test_taking_jobs_stops_at_a_message_of_another_kind_and_after_its_time(store: JobStore, settings: Settings) -> None:
    seed = json.loads((EXAMPLES / "seed.json").read_text())
    first = queued(store, seed)
    app = make_celery(Settings())
    points = queued(store, seed, lambda job_id: points_message(app, [job_id, "f" * 32]))
    behind = queued(store, seed)
    assert execute_queued(store, settings, 60, device="cpu") == {first: "succeeded"}
    assert store.get(points).state == store.get(behind).state == "queued" and store.redis.llen(QUEUE_KEY) == 2
    store.redis.rpop(QUEUE_KEY)  # as Celery delivers it to a worker
    assert execute_queued(store, settings, 0, device="cpu") == {}, "no time left: nothing taken"
    assert execute_queued(store, settings, 60, device="cpu", stopping=lambda: True) == {}, "nor once told to stop"
    assert execute_queued(store, settings, 60, device="cpu") == {behind: "succeeded"}


def test_a_redis_error_while_taking_leaves_the_queue_to_celery(
    store: JobStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = queued(store, json.loads((EXAMPLES / "seed.json").read_text()))

    def unreachable(*args: object) -> None:
        raise redis.ConnectionError("Redis is restarting")

    monkeypatch.setattr(JobStore, "take_next", unreachable)
    assert execute_queued(store, settings, 60, device="cpu") == {}, "the task that called it still ends normally"
    assert store.get(job_id).state == "queued" and store.redis.llen(QUEUE_KEY) == 1


def test_a_job_cancelled_while_queued_ends_cancelled_when_taken(store: JobStore, settings: Settings) -> None:
    job_id = queued(store, json.loads((EXAMPLES / "seed.json").read_text()))
    store.request_cancel(job_id)
    assert execute_queued(store, settings, 60, device="cpu") == {job_id: "cancelled"}
    assert store.get(job_id).state == "cancelled" and store.redis.llen(QUEUE_KEY) == 0


# --- sweep points run as the entries of one batch ------------------------------------------------

POINTS_BASE = {
    "network": {
        "layers": [
            {
                "type": "linear",
                "name": "fc",
                "in_features": 20,
                "out_features": 30,
                "weight": {"init": "normal", "mean": 0.3, "std": 0.3},
            },
            {"type": "lif", "name": "out"},
        ]
    },
    "input": {"type": "poisson", "rates": 40.0, "shape": [20], "steps": 400},
    "record": {"voltages": ["out"], "neurons": {"out": [0, 7]}},
    "seed": 3,
}


def queued_points(store: JobStore, rates: list[float], groups: list[list[int]]) -> list[str]:
    requests = [{**POINTS_BASE, "input": {**POINTS_BASE["input"], "rates": rate}} for rate in rates]
    job_ids: list[str] = []
    store.create_sweep(
        "alice", b"{}", "grid", [(json.dumps(r).encode(), 400, False) for r in requests], 100,
        lambda ids: job_ids.extend(ids) or b"message", groups,
    )  # fmt: skip
    return job_ids


def test_points_run_batched_end_as_jobs_equal_to_their_runs_alone(store: JobStore, settings: Settings) -> None:
    rates = [5.0, 30.0, 90.0, 350.0]
    batched = queued_points(store, rates, [[0, 1, 2, 3]])
    alone = queued_points(store, rates, [[0], [1], [2], [3]])
    assert execute_points(store, batched, settings, device="cpu") == dict.fromkeys(batched, "succeeded")
    for job_id in alone:
        assert execute_job(store, job_id, settings, device="cpu") == "succeeded"
    for one, other in zip(batched, alone, strict=True):
        assert store.get(one).steps_done == 400 and store.get(one).attempts == 1
        assert_same_recordings(Result.from_npz(store.result(one, "npz")), Result.from_npz(store.result(other, "npz")))
        assert json.loads(store.redis.hget(f"ss:job:{one}", "summary")) == json.loads(
            store.redis.hget(f"ss:job:{other}", "summary")
        )
    assert Result.from_json(store.result(batched[0], "json")).stats["batched_with"] == 4


def test_a_batch_skips_finished_and_cancelled_points_and_runs_the_rest(store: JobStore, settings: Settings) -> None:
    job_ids = queued_points(store, [10.0, 20.0, 30.0], [[0, 1, 2]])
    store.request_cancel(job_ids[1])
    assert execute_job(store, job_ids[2], settings, device="cpu") == "succeeded"  # a redelivered point ran alone
    ends = execute_points(store, job_ids, settings, device="cpu")
    assert ends == {job_ids[0]: "succeeded", job_ids[1]: "cancelled", job_ids[2]: "succeeded"}
    assert store.get(job_ids[2]).attempts == 1, "a finished point is never run again"


def test_points_that_do_not_share_a_network_run_one_after_another(store: JobStore, settings: Settings) -> None:
    job_ids = queued_points(store, [10.0, 20.0], [[0, 1]])
    other = {**POINTS_BASE, "input": {**POINTS_BASE["input"], "steps": 300}}
    store.redis.set(f"ss:job:{job_ids[1]}:request", json.dumps(other))  # not what the API would group
    assert execute_points(store, job_ids, settings, device="cpu") == dict.fromkeys(job_ids, "succeeded")
    assert Result.from_npz(store.result(job_ids[1], "npz")).steps == 300


def test_a_batch_out_of_time_gives_its_points_back_to_run_alone(store: JobStore, redis_server: RedisServer) -> None:
    settings = Settings(redis_url=redis_server.url, soft_time_limit_s=10, hard_time_limit_s=40)  # a batch gets 5 s
    job_ids: list[str] = []
    long = {
        "network": {"layers": [{**POINTS_BASE["network"]["layers"][0], "out_features": 2000}, {"type": "lif", "name": "out"}]},
        "input": {**POINTS_BASE["input"], "steps": 120_000},
    }
    # one point alone takes about 0.9 s here (a tenth of its 10 s: a point alone exceeded 4 s on a busy
    # machine), the batch of 24 about 12 s, over its 5 s on a machine twice as fast as this one
    requests = [{**long, "input": {**long["input"], "rates": 10.0 + k}} for k in range(24)]
    store.create_sweep(
        "alice", b"{}", "grid", [(json.dumps(r).encode(), 120_000, False) for r in requests], 100,
        lambda ids: job_ids.extend(ids) or b"message", [list(range(24))],
    )  # fmt: skip
    assert execute_points(store, job_ids, settings, device="cpu") == dict.fromkeys(job_ids, "queued")
    assert {store.get(job_id).state for job_id in job_ids} == {"queued"}
    assert set(store.to_resend()) == set(job_ids), "each gets a message of its own (sent by the heartbeat)"
    assert execute_job(store, job_ids[0], settings, device="cpu") == "succeeded"
    assert store.get(job_ids[0]).attempts == 1, "a start that handed the point back is not a retry"


def test_a_report_during_a_run_to_a_store_that_does_not_answer_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    """A Redis restart while a job runs: its progress, live spikes and cancel checks are skipped
    until Redis answers again, instead of failing the run (a progress report once outlasted the
    client's retries on a busy machine and the job failed)."""
    from app.redis_server import free_port
    from worker.execute import _while_store_answers

    gone = JobStore.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with pytest.raises(redis.ConnectionError):
        gone.progress("job", 10, 100)
    assert _while_store_answers(lambda: gone.progress("job", 10, 100)) is None
    assert _while_store_answers(lambda: gone.cancel_requested("job")) is None
    assert "the job store did not answer during a run" in caplog.text
    assert _while_store_answers(lambda: 42) == 42, "an answer is passed through"
