"""Running one stored job: the logic behind the Celery task, as a plain function tests can call."""

import contextlib
import logging
import threading
import time
import uuid

from celery.exceptions import SoftTimeLimitExceeded

from app.settings import Settings
from app.store import JobStore
from worker.runner import Cancelled, SimulationError, simulate
from worker.schema import InvalidRequest, parse_request

log = logging.getLogger(__name__)


class Lease:
    """Keeps a running job's lease alive from a background thread; ``lost`` turns true if it
    could not be renewed (the job may then belong to another worker)."""

    def __init__(self, store: JobStore, job_id: str, seconds: float) -> None:
        self.store = store
        self.job_id = job_id
        self.seconds = seconds
        self.token = uuid.uuid4().hex
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, daemon=True, name=f"lease-{job_id[:8]}")

    def _keep(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                if not self.store.renew_lease(self.job_id, self.token, self.seconds):
                    self.lost = True
                    return
            except Exception:  # Redis unreachable: keep trying until the lease would have lapsed
                log.warning("could not renew the lease of job %s", self.job_id, exc_info=True)

    def __enter__(self) -> "Lease":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(Exception):
            self.store.release_lease(self.job_id, self.token)


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
    job = store.get(job_id)
    if job is None:
        log.warning("job %s is unknown (expired?); nothing to run", job_id)
        return "unknown"
    if job.is_final:
        return job.state
    if job.cancel_requested:
        store.cancelled(job_id)
        return "cancelled"
    device = device or pick_device()
    lease = Lease(store, job_id, settings.lease_s)
    # Refused when cancelled meanwhile, finished, or running elsewhere under a live lease.
    if not store.start(job_id, device, lease.token, settings.lease_s):
        return store.get(job_id).state
    with lease:
        return _run_started(store, job_id, settings, device, lease)


def _run_started(store: JobStore, job_id: str, settings: Settings, device: str, lease: Lease) -> str:
    raw = store.request_json(job_id)
    if raw is None:
        store.fail(job_id, "the job's request is missing from the store")
        return "failed"
    try:
        request, plan = parse_request(raw, settings.limits)
        result = simulate(
            request,
            plan,
            device=device,
            chunk_steps=settings.chunk_steps,
            progress=lambda done, total: store.progress(job_id, done, total),
            is_cancelled=lambda: lease.lost or store.cancel_requested(job_id),
            job_id=job_id,
        )
    except Cancelled:
        if lease.lost:
            log.warning("job %s lost its lease and was left to the worker that took it over", job_id)
            return "lease lost"
        store.cancelled(job_id)
        return "cancelled"
    except InvalidRequest as error:
        store.fail(job_id, f"invalid request: {error}")
        return "failed"
    except SimulationError as error:
        store.fail(job_id, str(error))
        return "failed"
    except SoftTimeLimitExceeded:
        store.fail(job_id, f"the job exceeded its time limit of {settings.soft_time_limit_s} s")
        return "failed"
    except MemoryError:
        store.fail(job_id, "the job ran out of memory")
        return "failed"
    except Exception as error:
        if type(error).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            store.fail(job_id, f"the job ran out of GPU memory on {device}")
            return "failed"
        log.exception("job %s failed unexpectedly", job_id)
        store.fail(job_id, f"internal error while simulating ({type(error).__name__}); the operators have the details in the log")
        return "failed"
    if lease.lost:
        log.warning("job %s finished after losing its lease; its result is left to the new owner", job_id)
        return "lease lost"
    started = time.perf_counter()
    if not store.succeed(
        job_id, result.to_json(), result.to_npz(), int(result.stats["neuron_steps"]), float(result.stats["wall_s"])
    ):
        log.info("job %s finished but was no longer running (cancelled meanwhile)", job_id)
    log.info("job %s stored in %.3f s", job_id, time.perf_counter() - started)
    return store.get(job_id).state
