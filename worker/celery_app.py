"""The worker's Celery application (``celery -A worker.celery_app worker``): its instance, the
heartbeat that tells the API a worker is alive, and the process set-up of its pool children."""

import contextlib
import logging
import os
import socket
import threading
import time

from celery import signals

from worker.broker import TASK_NAME, make_celery
from worker.engine_options import configure as configure_engine
from worker.processes import ForkSharedFlag
from worker.settings import Settings
from worker.store import JobStore, heartbeat_key

settings = Settings()
configure_engine(settings.engine)  # inherited by the pool processes
celery = make_celery(settings)  # the worker's instance: `celery -A worker.celery_app worker`
STOPPING = ForkSharedFlag()  # made before the pool forks: raised when the worker is told to stop

log = logging.getLogger(__name__)
HEARTBEAT_PERIOD_S = 5
HEARTBEAT_TTL_S = 15


def _beat_forever(key: str) -> None:
    """Heartbeat for /readyz, and the reaper: jobs whose worker died are settled (requeued, or
    failed after too many deaths or past their time limit), requeued jobs get a new queue
    message (one that cannot be sent now stays marked and is sent on a later beat), and messages
    taken by a worker that died before starting their jobs go back to the queue."""

    store = JobStore.from_settings(settings)
    while True:
        with contextlib.suppress(Exception):  # Redis down: keep beating; /readyz reports it meanwhile
            store.redis.set(key, os.environ.get("CUDA_VISIBLE_DEVICES", "cpu"), ex=HEARTBEAT_TTL_S)
            for job_id, state in store.settle_orphans().items():
                log.warning("job %s lost its worker: now %s", job_id, state)
            for job_id in store.to_resend():
                celery.send_task(TASK_NAME, args=[job_id], task_id=job_id)  # task id = job id, as the API sends it
                store.resent(job_id)
            for job_id in store.restore_untaken(settings.lease_s):
                log.warning("job %s was taken by a worker that died before starting it: queued again", job_id)
        time.sleep(min(HEARTBEAT_PERIOD_S, settings.lease_s / 2))


def _heartbeat_key(sender: object) -> str:
    return heartbeat_key(getattr(sender, "hostname", None) or f"{socket.gethostname()}-{os.getpid()}")


@signals.worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    """/readyz counts workers by these keys, which expire when a worker stops beating."""
    threading.Thread(target=_beat_forever, args=(_heartbeat_key(sender),), daemon=True, name="spikeserve-heartbeat").start()


@signals.worker_shutting_down.connect
def _stopping(**_: object) -> None:
    """Pool processes take no more jobs from the queue on their own (``execute_queued``)."""
    STOPPING.set()


@signals.worker_process_init.connect
def _init_pool_process(**_: object) -> None:
    """A pool process dies with the worker that forked it (it would otherwise go on holding its
    job's lease), and may run under an address-space limit (SPIKESERVE_WORKER_MEMORY_BYTES), so a
    job that needs too much memory fails as out of memory instead of the kernel killing it."""
    from worker.processes import die_with_parent, limit_address_space

    die_with_parent(os.getppid())
    limit_address_space(settings.worker_memory_bytes)


@signals.worker_shutdown.connect
def _stop_heartbeat(sender: object = None, **_: object) -> None:

    with contextlib.suppress(Exception):
        JobStore.from_url(settings.redis_url).redis.delete(_heartbeat_key(sender))
