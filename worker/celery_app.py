"""The Celery application: JSON only, late acknowledgement, one job per worker process at a time."""

import contextlib
import os
import socket
import threading
import time

from celery import Celery, signals

from app.settings import Settings


def make_celery(settings: Settings) -> Celery:
    app = Celery("spikeserve", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        # JSON only: a pickle message could execute code on the worker.
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        # Job state lives in our own store; Celery's result backend is not used.
        task_ignore_result=True,
        # A job is acknowledged only after it finished; a worker that dies mid-job gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.soft_time_limit_s,
        task_time_limit=settings.hard_time_limit_s,
        # Redis redelivers unacknowledged messages after this; it must outlast the longest job.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


settings = Settings()
celery = make_celery(settings)  # the worker's instance: `celery -A worker.celery_app worker`

TASK_NAME = "spikeserve.run_job"
HEARTBEAT_KEY = "ss:workers:{}"
HEARTBEAT_PERIOD_S = 5
HEARTBEAT_TTL_S = 15


def _beat_forever(key: str) -> None:
    """Heartbeat for /readyz, and the reaper: jobs whose worker died go back to the queue."""
    from app.store import JobStore

    store = JobStore.from_url(settings.redis_url)
    while True:
        with contextlib.suppress(Exception):  # Redis down: keep beating; /readyz reports it meanwhile
            store.redis.set(key, os.environ.get("CUDA_VISIBLE_DEVICES", "cpu"), ex=HEARTBEAT_TTL_S)
            for job_id in store.requeue_orphans():
                celery.send_task(TASK_NAME, args=[job_id])
        time.sleep(min(HEARTBEAT_PERIOD_S, settings.lease_s / 2))


def _heartbeat_key(sender: object) -> str:
    return HEARTBEAT_KEY.format(getattr(sender, "hostname", None) or f"{socket.gethostname()}-{os.getpid()}")


@signals.worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    """/readyz counts workers by these keys, which expire when a worker stops beating."""
    threading.Thread(target=_beat_forever, args=(_heartbeat_key(sender),), daemon=True, name="spikeserve-heartbeat").start()


@signals.worker_shutdown.connect
def _stop_heartbeat(sender: object = None, **_: object) -> None:
    from app.store import JobStore

    with contextlib.suppress(Exception):
        JobStore.from_url(settings.redis_url).redis.delete(_heartbeat_key(sender))
