"""Running one stored job: the logic behind the Celery task, as a plain function tests can call."""

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from celery.exceptions import SoftTimeLimitExceeded

from worker.broker import TASK_NAME
from worker.settings import Settings
from worker.simulation.batched import simulate_points
from worker.simulation.cost import RECORD_LESS
from worker.simulation.errors import Cancelled, InvalidRequest, SimulationError, TimeLimitExceeded
from worker.simulation.plan import parse_request
from worker.simulation.plans import Plan
from worker.simulation.request import JobRequest
from worker.simulation.results import Result
from worker.simulation.runner import simulate
from worker.store import Claim, JobStore, Success

log = logging.getLogger(__name__)
STORE_BATCH = 16  # sweep points stored in one round trip
STORE_BATCH_BYTES = 16 * 2**20


class Lease:
    """A running job's lease; ``lost`` turns true if it could not be renewed (the job may then
    belong to another worker). Renewed by the process's ``LeaseKeeper`` while entered."""

    def __init__(self, store: JobStore, job_id: str, seconds: float, token: str | None = None) -> None:
        self.store = store
        self.job_id = job_id
        self.seconds = seconds
        self.token = token or uuid.uuid4().hex
        self.lost = False
        self.released = False  # set when a store call released it already

    def renew(self) -> None:
        try:
            if not self.store.renew_lease(self.job_id, self.token, self.seconds):
                self.lost = True
        except Exception:  # Redis unreachable: keep trying until the lease would have lapsed
            log.warning("could not renew the lease of job %s", self.job_id, exc_info=True)

    def __enter__(self) -> "Lease":
        KEEPER.hold(self)
        return self

    def __exit__(self, *_: object) -> None:
        KEEPER.drop(self)
        if not self.released:
            with contextlib.suppress(Exception):
                self.store.release_lease(self.job_id, self.token)


class LeaseKeeper:
    """One thread per process renews every held lease each quarter of its length.

    A thread per job would cost a start and a join on every job, a millisecond on short ones.
    The thread starts on first use in the process that runs jobs (so never before a fork).
    """

    IDLE_WAIT_S = 1.0

    def __init__(self) -> None:
        self._held: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None
        self._sleeping_until = 0.0

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._held[id(lease)] = lease
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._keep, daemon=True, name="spikeserve-leases")
                self._thread.start()
            # Wake the thread only if it would notice this lease too late; it then renews the
            # lease within half its length. Waking it for every job cost a thread switch each.
            wake = time.monotonic() + lease.seconds / 4 < self._sleeping_until
        if wake:
            self._changed.set()

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop(id(lease), None)

    def _keep(self) -> None:
        due: dict[int, float] = {}
        while True:
            with self._lock:
                held = dict(self._held)
            now = time.monotonic()
            for key, lease in held.items():
                if key not in due:
                    due[key] = now + lease.seconds / 4
                elif now >= due[key]:
                    lease.renew()
                    due[key] = now + lease.seconds / 4
            due = {key: when for key, when in due.items() if key in held}
            with self._lock:
                if self._held.keys() != held.keys():
                    continue  # held or dropped meanwhile: look again before sleeping
                self._sleeping_until = min(due.values(), default=now + self.IDLE_WAIT_S)
            self._changed.wait(max(0.0, self._sleeping_until - time.monotonic()))
            self._changed.clear()


KEEPER = LeaseKeeper()


def pick_device() -> str:
    """CUDA when this process sees a GPU, else the CPU. Called in the worker child, so CUDA is
    initialised lazily there and never in a forking parent."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def execute_job(store: JobStore, job_id: str, settings: Settings, device: str | None = None) -> str:
    """Runs ``job_id`` if it is still to run, and leaves it in a final state; returns that state.

    Safe to call twice for the same job (at-least-once delivery): a finished or cancelled job is
    left alone, a job found running (its worker died) is run again from the start.
    """
    device = device or pick_device()
    lease = Lease(store, job_id, settings.lease_s)
    # One round trip: refused when unknown, cancelled, finished, or running elsewhere under a live lease.
    return _run_claimed(store, job_id, settings, device, lease, store.claim(job_id, device, lease.token, settings.lease_s))


def execute_queued(
    store: JobStore,
    settings: Settings,
    seconds: float,
    device: str | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> dict[str, str]:
    """Runs the jobs queued next, their messages taken straight from the queue
    (``JobStore.take_next``), until the queue is empty, its oldest message is of another kind,
    ``seconds`` have passed or ``stopping()`` says the worker is told to stop; returns each job's
    final state.

    A worker calls it after the job its Celery message brought: each tiny job then costs one
    round trip to take and claim instead of Celery's delivery, acknowledgement and hand-over to
    the pool process (more than the job itself). The time bound hands the worker back to Celery
    soon; a job taken this way is as safe as one Celery delivered, since its lease covers it.
    """
    device = device or pick_device()
    deadline = time.monotonic() + seconds
    ends: dict[str, str] = {}
    while time.monotonic() < deadline and not stopping():
        token = uuid.uuid4().hex  # the lease's, before its job is known
        try:
            taken = store.take_next(TASK_NAME, device, token, settings.lease_s)
        except redis.exceptions.RedisError:  # the task's own job has ended; Celery delivers the rest
            log.warning("could not take the next queued job; leaving the queue to Celery", exc_info=True)
            break
        if taken is None:
            break
        job_id, claim = taken
        ends[job_id] = _run_claimed(store, job_id, settings, device, Lease(store, job_id, settings.lease_s, token), claim)
    return ends


def _run_claimed(store: JobStore, job_id: str, settings: Settings, device: str, lease: Lease, claim: Claim) -> str:
    if not claim.started:
        return _refused(store, job_id, claim)
    with lease:
        return _run_started(store, job_id, settings, device, lease, claim.request)


def _refused(store: JobStore, job_id: str, claim: Claim) -> str:
    """The state of a job its claim did not start: unknown, cancelled now (a cancel was asked for
    while it was queued), or as it is (finished, or running elsewhere)."""
    if claim.state is None:
        log.warning("job %s is unknown (expired?); nothing to run", job_id)
        return "unknown"
    if claim.cancel_requested:
        store.cancelled(job_id)
        return "cancelled"
    return claim.state


def _out_of_memory(error: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError (CUDA) and the CPU allocator's RuntimeError."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def failure_reason(error: Exception, device: str, settings: Settings, stage: str) -> str:
    """What the job's record says about an error raised while ``stage`` (simulating, encoding or
    storing the result)."""
    if isinstance(error, (TimeLimitExceeded, SoftTimeLimitExceeded)):
        return f"time limit of {settings.soft_time_limit_s:g} s exceeded"
    if isinstance(error, InvalidRequest):
        return f"invalid request: {error}"
    if isinstance(error, SimulationError):
        return str(error)
    if _out_of_memory(error):
        return f"the job ran out of memory on {device} while {stage}"
    log.error("job failed unexpectedly while %s", stage, exc_info=error)
    return f"internal error while {stage} ({type(error).__name__}); the operators have the details in the log"


def _while_store_answers(report: Callable[[], Any]) -> Any:
    """What a report to the store during a run (progress, live spikes, a look at the cancel flag)
    returns, or None while the store is unreachable: a Redis restart must not fail the run (one
    did, on a busy machine, when a progress report outlasted the client's retries). The run's end
    is stored with retries of its own; a lost lease still stops the run (``Lease.lost``)."""
    try:
        return report()
    except (redis.ConnectionError, redis.TimeoutError) as error:
        log.warning("the job store did not answer during a run (%s); the run goes on", error)
        return None


def _run_started(store: JobStore, job_id: str, settings: Settings, device: str, lease: Lease, raw: bytes | None) -> str:
    """Runs a claimed job alone and records how it ended (``_record_end``)."""
    if raw is None:
        store.fail(job_id, "the job's request is missing from the store")
        return "failed"
    checks = 0

    def is_cancelled() -> bool:
        nonlocal checks
        checks += 1  # the claim has just checked the cancel flag: the first check needs no round trip
        return lease.lost or (checks > 1 and bool(_while_store_answers(lambda: store.cancel_requested(job_id))))

    def progress(done: int, total: int) -> None:
        if done < total:  # the last step count arrives with the final state
            _while_store_answers(lambda: store.progress(job_id, done, total))

    def run() -> Result:
        request, plan = parse_request(raw, settings.limits)
        return simulate(
            request,
            plan,
            device=device,
            progress=progress,
            is_cancelled=is_cancelled,
            job_id=job_id,
            time_limit_s=settings.soft_time_limit_s,
            live=lambda chunk: _while_store_answers(lambda: store.live_chunk(job_id, chunk.start, chunk.to_json())),
        )

    return _record_end(store, job_id, settings, device, lease, run)


def _record_end(store: JobStore, job_id: str, settings: Settings, device: str, lease: Lease, run: Callable[[], Result]) -> str:
    """Every way a started run can end is recorded here, once: succeeded, cancelled, or failed with
    its reason. Only a lost lease leaves the record alone (it belongs to another worker then)."""
    ended = _encoded_end(store, job_id, settings, device, lease, run)
    return ended if isinstance(ended, str) else _store_ends(store, settings, device, [(lease, ended)])[0]


def _encoded_end(
    store: JobStore, job_id: str, settings: Settings, device: str, lease: Lease, run: Callable[[], Result]
) -> Success | str:
    """A run that succeeded, encoded and ready to store (``_store_ends``); any other end is
    recorded now, and its state returned."""
    stage = "simulating"
    try:
        result = run()
        if lease.lost:
            raise Cancelled("the lease was lost")
        stage = "encoding the result"
        encoded = b"" if result.json_on_request else result.to_json(), result.to_npz()
        too_large = [
            (name, len(data))
            for name, data in zip(("JSON", "NPZ"), encoded, strict=True)
            if len(data) > settings.max_result_bytes
        ]
        if too_large:
            sizes = ", ".join(f"{size} bytes as {name}" for name, size in too_large)
            raise SimulationError(
                f"the result is too large to store ({sizes}; the limit is {settings.max_result_bytes} bytes): {RECORD_LESS}"
            )
        stats = result.stats
        summary = json.dumps(result.spike_summary()).encode()
        return Success(job_id, *encoded, int(stats["neuron_steps"]), float(stats["wall_s"]), lease.token, summary)
    except Cancelled:
        if lease.lost:
            log.warning("job %s lost its lease and was left to the worker that took it over", job_id)
            return "lease lost"
        store.cancelled(job_id)
        return "cancelled"
    except Exception as error:
        if lease.lost:
            log.warning("job %s failed after losing its lease; left to the worker that took it over", job_id)
            return "lease lost"
        store.fail(job_id, failure_reason(error, device, settings, stage))
        return "failed"


def _store_ends(store: JobStore, settings: Settings, device: str, ends: list[tuple[Lease, Success]]) -> list[str]:
    """Stores succeeded runs in one round trip; returns each job's state (a job cancelled
    meanwhile keeps its state; one that cannot be stored fails with the reason)."""
    try:
        moved = store.succeed_many([success for _, success in ends])
    except Exception as error:
        states = []
        for lease, success in ends:
            if lease.lost:
                log.warning("job %s failed after losing its lease; left to the worker that took it over", success.job_id)
                states.append("lease lost")
            else:
                store.fail(success.job_id, failure_reason(error, device, settings, "storing the result"))
                states.append("failed")
        return states
    states = []
    for (lease, success), stored in zip(ends, moved, strict=True):
        lease.released = lease.released or stored
        if stored:
            states.append("succeeded")
            continue
        log.info("job %s finished but was no longer running (cancelled meanwhile)", success.job_id)
        job = store.get(success.job_id)
        states.append(job.state if job else "unknown")
    return states


# --- sweep points that run as the entries of one batch ----------------------------------------------


def execute_points(store: JobStore, job_ids: list[str], settings: Settings, device: str | None = None) -> dict[str, str]:
    """Runs the sweep points ``job_ids`` that are still to run as the entries of one batched
    simulation (``worker.simulation.batched``), each ending like a job of its own; returns each
    point's final state. A point whose worker dies meanwhile is requeued alone and runs alone,
    to the same result."""
    device = device or pick_device()
    leases = [Lease(store, job_id, settings.lease_s) for job_id in job_ids]
    claims = store.claim_many(job_ids, device, [lease.token for lease in leases], settings.lease_s)
    ends: dict[str, str] = {}
    started: list[tuple[Lease, bytes | None]] = []
    for job_id, lease, claim in zip(job_ids, leases, claims, strict=True):
        if claim.started:
            started.append((lease, claim.request))
        else:
            ends[job_id] = _refused(store, job_id, claim)
    with contextlib.ExitStack() as held:
        for lease, _ in started:
            held.enter_context(lease)
        ends.update(_run_points(store, started, settings, device))
    return ends


def _batch_key(request: JobRequest, plan: Plan) -> str:
    """What the points of one batch must share (their axes are the only differences)."""
    assert plan.cost is not None and request.input is not None, "only chains of layers are batched"
    voltages = {name: None if kept is None else kept.tolist() for name, kept in plan.record_voltages.items()}
    layers = [(layer.type, layer.out_shape) for layer in plan.layers]
    shared = [request.dt, request.input.type, plan.steps, plan.batch, plan.cost.chunk_steps, layers, plan.record_spikes, voltages]
    return json.dumps(shared)


def _run_points(store: JobStore, started: list[tuple[Lease, bytes | None]], settings: Settings, device: str) -> dict[str, str]:
    runs: list[tuple[Lease, tuple[JobRequest, Plan]]] = []
    ends: dict[str, str] = {}
    alone: list[tuple[Lease, bytes | None]] = []  # a point whose request does not parse fails as a job would
    for lease, raw in started:
        try:
            runs.append((lease, parse_request(raw or b"", settings.limits)))
        except Exception:
            alone.append((lease, raw))
    if len({_batch_key(*run) for _, run in runs}) > 1:  # not what the API groups: each runs alone
        alone = started
        runs = []
    for lease, raw in alone:
        ends[lease.job_id] = _run_started(store, lease.job_id, settings, device, lease, raw)
    if not runs:
        return ends
    job_ids = [lease.job_id for lease, _ in runs]
    checks = 0

    def cancelled() -> set[int]:
        nonlocal checks
        checks += 1  # the claims have just checked the cancel flags
        flags = _while_store_answers(lambda: store.cancels_requested(job_ids)) if checks > 1 else None
        flags = flags or [False] * len(job_ids)
        return {entry for entry, ((lease, _), flag) in enumerate(zip(runs, flags, strict=True)) if flag or lease.lost}

    def progress(done: int, total: int) -> None:
        if done < total:
            _while_store_answers(lambda: store.progress_many(job_ids, done, total))

    try:
        outcomes = simulate_points(
            [run for _, run in runs],
            job_ids,
            device=device,
            progress=progress,
            cancelled=cancelled,
            time_limit_s=settings.soft_time_limit_s / 2,
        )
    except Exception as error:
        # Out of time or memory as a batch says nothing of a point alone: each goes back to the
        # queue (marked for a new message) and runs alone, under its own limits.
        log.warning("a batch of %d sweep points failed (%r); they are requeued to run alone", len(runs), error)
        for lease, _ in runs:
            given_back = store.give_back(lease.job_id, lease.token)
            lease.released = given_back
            ends[lease.job_id] = "queued" if given_back else "lease lost"
        return ends
    # Encoded four at a time (ISA-L's deflate releases the GIL) while those done are stored, up
    # to STORE_BATCH points or STORE_BATCH_BYTES to a round trip: one by one, 64 stores took 29 ms,
    # pipelined 16 ms.
    waiting: list[tuple[Lease, Success]] = []

    def store_waiting() -> None:
        states = _store_ends(store, settings, device, waiting)
        ends.update(zip([success.job_id for _, success in waiting], states, strict=True))
        waiting.clear()

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="spikeserve-encode") as pool:
        encoded = pool.map(
            lambda run: (run[0][0], _encoded_end(store, run[0][0].job_id, settings, device, run[0][0], _returning(run[1]))),
            zip(runs, outcomes, strict=True),
        )
        for lease, ended in encoded:
            if isinstance(ended, str):
                ends[lease.job_id] = ended
                continue
            waiting.append((lease, ended))
            if len(waiting) == STORE_BATCH or sum(len(s.result_json) + len(s.result_npz) for _, s in waiting) > STORE_BATCH_BYTES:
                store_waiting()
    if waiting:
        store_waiting()
    return ends


def _returning(outcome: Result | Exception) -> Callable[[], Result]:
    def run() -> Result:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return run
