"""The store as the workers (and the CLI and tests) use it: blocking calls on a Redis client.

State changes are compare-and-set Lua scripts (``worker.store.scripts``), so a cancel racing a
start, or a redelivered task racing its first run, can never leave a job in a state it should
not be in:

    queued -> running -> succeeded | failed | cancelled
    queued -> cancelled | failed
    running -> running | queued   (only once the job's lease has lapsed: its worker died)

A running job holds a lease that its worker renews every few seconds. A lease that lapses means
the worker is gone (killed, out of memory, cut off from Redis); ``settle_orphans`` then puts the
job back in the queue. A second delivery of a job whose lease is alive is refused, so a job never
runs twice at the same time.
"""

import json
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import redis

from worker.broker import QUEUE_KEY, UNACKED_INDEX_KEY, UNACKED_KEY, job_ids_of, unacked_entry
from worker.store import calls
from worker.store.calls import Call
from worker.store.keys import (
    RESEND_KEY,
    STATS_KEY,
    events_channel,
    job_key,
    lease_key,
    live_key,
    owner_jobs_key,
    request_key,
    result_key,
    state_set_key,
    submitted_key,
)
from worker.store.records import (
    ACTIVE_STATES,
    FINAL_STATES,
    Claim,
    Job,
    Submission,
    Success,
    Sweep,
    claim_of,
    duration_bucket,
    new_submission,
)
from worker.store.scripts import SCRIPTS

if TYPE_CHECKING:
    from worker.settings import Settings

T = TypeVar("T")
LIVE_IDLE_TTL_S = 3600  # a stream whose job never ended (a lost worker) does not stay forever
LIVE_MAX_CHUNKS = 64  # the stream keeps the newest chunks only: a late reader gets the result instead


class JobStore:
    """Job records and their state changes. ``max_attempts`` and ``time_limit_s`` settle jobs whose
    worker died (see ``settle`` above): after that many deaths, or a run that lasted past the time
    limit, the job fails with the reason instead of running again."""

    def __init__(
        self,
        client: redis.Redis,
        job_ttl_s: int = 7 * 24 * 3600,
        result_ttl_s: int = 24 * 3600,
        max_attempts: int = 3,
        time_limit_s: float = 3600,
    ) -> None:
        # Any: redis-py types every reply as bytes | str (| awaitable); this client answers bytes
        self.redis: Any = client
        self.job_ttl_s = job_ttl_s
        self.result_ttl_s = result_ttl_s
        self.max_attempts = max_attempts
        self.time_limit_s = time_limit_s
        self._scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}

    def _run(self, call: Call[T]) -> T:
        return call.parse(self._scripts[call.script](keys=call.keys, args=call.args))

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "JobStore":
        return cls(redis.Redis.from_url(url, decode_responses=False, health_check_interval=10), **kwargs)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "JobStore":
        return cls.from_url(
            settings.redis_url,
            job_ttl_s=settings.job_ttl_s,
            result_ttl_s=settings.result_ttl_s,
            max_attempts=settings.max_attempts,
            time_limit_s=settings.soft_time_limit_s,
        )

    @property
    def _policy(self) -> list[Any]:
        """The settle arguments: max attempts, time limit, job ttl."""
        return [self.max_attempts, f"{self.time_limit_s:g}", self.job_ttl_s]

    # --- records ------------------------------------------------------------------------------

    def create(self, owner: str, request_json: bytes | memoryview, steps_total: int, max_in_flight: int, **options: Any) -> Job:
        """A new queued job: ``submit`` of ``new_submission``, which says what each argument is."""
        return self.submit(new_submission(owner, request_json, steps_total, max_in_flight, **options))

    def submit(self, submission: Submission) -> Job:
        """Records the job and its queue message in one atomic script; InFlightLimit when the
        owner has too many jobs queued or running, StorageQuota when it keeps too much."""
        return self._run(calls.submit(submission))

    def get(self, job_id: str) -> Job | None:
        return Job.from_raw(self.redis.hgetall(job_key(job_id)))

    def request_json(self, job_id: str) -> bytes | None:
        """The request as the client submitted it."""
        submitted, run = self.redis.mget(submitted_key(job_id), request_key(job_id))
        return submitted or run

    def owned_count(self, owner: str) -> int:
        return self.redis.zcard(owner_jobs_key(owner))

    def reassign(self, old_owner: str, new_owner: str) -> int:
        """Gives every job and sweep of ``old_owner`` to ``new_owner`` (one atomic step); returns
        how many jobs."""
        return self._run(calls.reassign(old_owner, new_owner))

    def stored_bytes(self, owner: str) -> int:
        """The bytes of requests and results the owner keeps in the store (expired ones taken off)."""
        return self._run(calls.stored_bytes(owner))

    def purge(self, job_id: str) -> str:
        return self._run(calls.purge(job_id))

    def purge_sweep(self, sweep_id: str) -> str:
        return self._run(calls.purge_sweep(sweep_id))

    def list_owned(self, owner: str, offset: int, limit: int) -> tuple[list[Job], int]:
        """A page of the owner's jobs, newest first, and how many there are."""
        return self._run(calls.jobs_page(owner, offset, limit))

    # --- sweeps -------------------------------------------------------------------------------

    def create_sweep(self, *args: Any, **kwargs: Any) -> Sweep:
        """``worker.store.calls.create_sweep``, which says what each argument is."""
        return self._run(calls.create_sweep(*args, **kwargs))

    def cancel_sweep(self, sweep_id: str) -> bool:
        """Flags the sweep and cancels every point not yet finished (queued ones at once)."""
        return self._run(calls.cancel_sweep(sweep_id, self.job_ttl_s))

    def list_sweeps(self, owner: str, offset: int, limit: int) -> tuple[list[Sweep], int]:
        """A page of the owner's sweeps, newest first, and how many there are."""
        return self._run(calls.sweeps_page(owner, offset, limit))

    # --- state changes ------------------------------------------------------------------------

    def transition(self, job_id: str, allowed: tuple[str, ...], to: str, **fields: Any) -> tuple[bool, str | None]:
        """Moves the job to ``to`` if it is in one of ``allowed``; returns (moved, state now).
        A job moved to a final state expires after ``job_ttl_s``."""
        ttl = self.job_ttl_s if to in FINAL_STATES else ""
        args: list[Any] = [",".join(allowed), to, time.time(), ttl]
        for key, value in fields.items():
            args += [key, "" if value is None else value]
        reply = self._scripts["transition"](keys=[job_key(job_id), STATS_KEY], args=args)
        if not reply:
            return False, None
        return bool(reply[0]), reply[1].decode() if isinstance(reply[1], bytes) else reply[1]

    def claim(self, job_id: str, device: str, token: str, lease_s: float) -> "Claim":
        """Starts the job for this worker in one round trip (see ``start``), returning its request."""
        return self.claim_many([job_id], device, [token], lease_s)[0]

    def claim_many(self, job_ids: list[str], device: str, tokens: list[str], lease_s: float) -> list["Claim"]:
        """``claim`` for several jobs (each with its lease token) in one round trip."""
        now = time.time()
        lease_ms = int(lease_s * 1000)
        starts = [
            ([job_key(job_id), lease_key(job_id), STATS_KEY, request_key(job_id)], [now, device, token, lease_ms, *self._policy])
            for job_id, token in zip(job_ids, tokens, strict=True)
        ]
        return [claim_of(reply) for reply in self._pipelined(self._scripts["start"], starts)]

    def take_next(self, task: str, device: str, token: str, lease_s: float) -> tuple[str, "Claim"] | None:
        """The oldest message in the job queue, taken from it when it runs one job (Celery task
        ``task``, its task id the job's id), with its job claimed as ``claim`` claims one, in one
        round trip: (job id, claim). None when the queue is empty or its oldest message is of
        another kind (a batch of sweep points, say), which stays where it was. A worker that took
        a message this way answers for its job as for one Celery handed it: the claim's lease
        covers it, and Redis never sees the message again."""
        args = [time.time(), device, token, int(lease_s * 1000), *self._policy, task]
        reply = self._pipelined(self._scripts["take_next"], [([QUEUE_KEY, STATS_KEY], args)])[0]
        return (reply[0].decode(), claim_of(reply[1])) if reply else None

    def _pipelined(self, script: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """``script`` called once per (keys, args) in one round trip, by its hash in a plain
        pipeline: redis-py's pipelined scripts ask Redis whether the script is loaded on every
        execute, a second round trip. A Redis that lost its scripts (a restart) answers NOSCRIPT
        to every call; the script is then loaded and the calls sent again (a refused ``EVALSHA``
        changed nothing)."""
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                self.redis.script_load(script.script)
        raise AssertionError("unreachable")

    def start(self, job_id: str, device: str, token: str = "", lease_s: float = 20.0) -> bool:
        """queued -> running, taking the lease; running -> running only if the lease has lapsed
        (and the dead attempt did not end the job). Refused for a job whose cancel was requested."""
        return self.claim(job_id, device, token or uuid.uuid4().hex, lease_s).started

    def renew_lease(self, job_id: str, token: str, lease_s: float) -> bool:
        args: list[Any] = [token, int(lease_s * 1000), time.time()]
        return bool(self._scripts["renew"](keys=[lease_key(job_id), job_key(job_id)], args=args))

    def give_back(self, job_id: str, token: str) -> bool:
        """running -> queued for a job whose lease ``token`` holds, its new queue message sent by a
        worker's heartbeat (``to_resend``); False when the job is not this worker's any more."""
        keys = [job_key(job_id), lease_key(job_id), STATS_KEY]
        return bool(self._scripts["give_back"](keys=keys, args=[time.time(), token, self.job_ttl_s]))

    def release_lease(self, job_id: str, token: str) -> None:
        if self.redis.get(lease_key(job_id)) == token.encode():
            self.redis.delete(lease_key(job_id))

    def settle_orphans(self) -> dict[str, str]:
        """Running jobs whose lease lapsed are settled: requeued (and marked for a new queue
        message), failed or cancelled. Returns {job id: new state}."""
        settled = {}
        for raw in self.redis.smembers(state_set_key("running")):
            job_id = raw.decode()
            keys = [job_key(job_id), lease_key(job_id), STATS_KEY]
            state = self._scripts["requeue"](keys=keys, args=[time.time(), *self._policy])
            if state:
                settled[job_id] = state.decode()
        return settled

    def restore_untaken(self, older_than_s: float) -> list[str]:
        """Queue messages that a worker took but whose jobs it never started (it died between the
        two), back to the queue: taken longer than ``older_than_s`` ago, every job they name still
        queued. A live worker starts a job moments after taking its message; Redis would hand the
        message out again only after its visibility timeout, an hour away. Restoring a message
        that was not lost is harmless: the second start is refused. Returns the jobs' ids."""
        restored: list[str] = []
        for tag, taken_at in self.redis.zrangebyscore(UNACKED_INDEX_KEY, 0, time.time() - older_than_s, withscores=True):
            raw = self.redis.hget(UNACKED_KEY, tag)
            try:
                message, routing_key = unacked_entry(raw)
                job_ids = job_ids_of(message)
            except (TypeError, ValueError, KeyError, IndexError):
                continue  # gone meanwhile, or not a job's message
            pipe = self.redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hmget(job_key(job_id), "state", "started_at")
            records = pipe.execute()
            if any(state != b"queued" for state, _ in records):
                continue  # started (its lease tells whether its worker lives) or ended
            # Started since the message was taken, then requeued with a message of its own: this
            # one is stale (a killed batch's), and is dropped instead of run once more.
            stale = any(started is not None and float(started) > taken_at for _, started in records)
            keys = [UNACKED_KEY, UNACKED_INDEX_KEY, routing_key]
            if self._scripts["restore"](keys=keys, args=[tag, raw, "" if stale else json.dumps(message)]) and not stale:
                restored += job_ids
        return restored

    def to_resend(self) -> list[str]:
        """Requeued jobs whose queue message has not been sent yet."""
        return [raw.decode() for raw in self.redis.smembers(RESEND_KEY)]

    def resent(self, job_id: str) -> None:
        self.redis.srem(RESEND_KEY, job_id)

    def progress(self, job_id: str, steps_done: int, steps_total: int) -> None:
        self.progress_many([job_id], steps_done, steps_total)

    def progress_many(self, job_ids: list[str], steps_done: int, steps_total: int) -> None:
        """The same progress for running jobs (a batch of sweep points), in one round trip."""
        event = json.dumps({"status": "running", "steps_done": steps_done, "steps_total": steps_total})
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hset(job_key(job_id), "steps_done", steps_done)
            pipe.publish(events_channel(job_id), event)
        pipe.execute()

    def live_chunk(self, job_id: str, start: int, chunk_json: bytes) -> None:
        """Appends a chunk's live spikes to the job's stream (the newest LIVE_MAX_CHUNKS are kept).
        A chunk at step 0 begins a run, so a rerun of a requeued job replaces its first run's
        chunks. The stream expires an hour after its last chunk, a minute after the job ends."""
        pipe = self.redis.pipeline(transaction=False)
        if start == 0:
            pipe.delete(live_key(job_id))
        pipe.xadd(live_key(job_id), {"chunk": chunk_json}, maxlen=LIVE_MAX_CHUNKS, approximate=False)
        pipe.expire(live_key(job_id), LIVE_IDLE_TTL_S)
        pipe.execute()

    def request_cancel(self, job_id: str) -> Job | None:
        """Flags the job (one atomic step); a queued job is cancelled at once, a running one by its
        worker at its next chunk, or when its dead worker's lease lapses."""
        self._run(calls.cancel(job_id, self.job_ttl_s))
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.cancels_requested([job_id]) == [True]

    def cancels_requested(self, job_ids: list[str]) -> list[bool]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(job_key(job_id), "cancel")
        return [flag == b"1" for flag in pipe.execute()]

    def succeed(
        self,
        job_id: str,
        result_json: bytes,
        result_npz: bytes,
        neuron_steps: int,
        wall_s: float,
        lease_token: str = "",
        summary: bytes = b"{}",
    ) -> bool:
        """running -> succeeded with the results (one round trip); releases the lease if ``lease_token``
        holds it. ``summary`` (JSON: spikes and mean rate per recorded layer) stays in the record."""
        return self.succeed_many([Success(job_id, result_json, result_npz, neuron_steps, wall_s, lease_token, summary)])[0]

    def succeed_many(self, successes: list[Success]) -> list[bool]:
        """``succeed`` for several jobs in one round trip (sweep points run as one batch end
        together); for each, whether it moved (False: the record was no longer running, or gone)."""
        now = time.time()
        stores = []
        for done in successes:
            keys = [job_key(done.job_id), request_key(done.job_id), lease_key(done.job_id), STATS_KEY]
            keys += [result_key(done.job_id, "json"), result_key(done.job_id, "npz")]
            args: list[Any] = [now, done.lease_token, self.result_ttl_s, self.job_ttl_s, done.result_json, done.result_npz]
            args += [done.neuron_steps, done.wall_s, done.summary, *duration_bucket(done.wall_s)]
            stores.append((keys, args))
        return [bool(reply and reply[0]) for reply in self._pipelined(self._scripts["succeed"], stores)]  # {} when gone

    def fail(self, job_id: str, error: str) -> bool:
        return self.transition(job_id, ("queued", "running"), "failed", error=error)[0]

    def cancelled(self, job_id: str) -> bool:
        return self.transition(job_id, ("queued", "running"), "cancelled")[0]

    def result(self, job_id: str, fmt: str) -> bytes | None:
        return self.redis.get(result_key(job_id, fmt))

    # --- metrics ------------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        raw = self.redis.hgetall(STATS_KEY)
        return {k.decode(): float(v) for k, v in raw.items()}

    def active_counts(self) -> dict[str, int]:
        return {state: self.redis.scard(state_set_key(state)) for state in ACTIVE_STATES}

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False
