"""The job queue as both sides see it: the Celery configuration (JSON only, late acknowledgement,
one job per worker process at a time) and the task's name. The API sends with its own instance
built here; the worker's instance lives in ``worker.celery_app``."""

from celery import Celery

from worker.settings import Settings

TASK_NAME = "spikeserve.run_job"


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
        task_soft_time_limit=settings.celery_soft_time_limit_s,
        task_time_limit=settings.hard_time_limit_s,
        # Redis redelivers unacknowledged messages after this; it must outlast the longest job.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
