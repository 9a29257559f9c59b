"""A bare Celery echo task, configured like spikeserve's worker (JSON, acks_late, prefetch 1,
prefork, one process), as the floor that benchmarks/service.py compares the service against."""

import os

from celery import Celery

echo_app = Celery("echo", broker=os.environ["ECHO_REDIS_URL"], backend=os.environ["ECHO_REDIS_URL"])
echo_app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


@echo_app.task(name="echo")
def echo(value: object) -> object:
    return value
