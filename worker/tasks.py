"""Celery tasks: thin wrappers over worker.execute."""

from worker.broker import POINTS_TASK_NAME
from worker.celery_app import STOPPING, TASK_NAME, celery, settings
from worker.execute import execute_job, execute_points, execute_queued
from worker.store import JobStore

_store: JobStore | None = None


def store() -> JobStore:
    global _store
    if _store is None:  # one connection pool per worker process, made after the fork
        _store = JobStore.from_settings(settings)
    return _store


QUEUED_AFTER_S = 1.0  # how long a worker goes on with the jobs queued behind its task's (execute_queued)


@celery.task(name=TASK_NAME)
def run_job(job_id: str) -> str:
    state = execute_job(store(), job_id, settings)
    execute_queued(store(), settings, QUEUED_AFTER_S, stopping=STOPPING.is_set)
    return state


@celery.task(name=POINTS_TASK_NAME)
def run_points(job_ids: list[str]) -> dict[str, str]:
    return execute_points(store(), job_ids, settings)
