"""Celery tasks: thin wrappers over worker.execute."""

from worker.celery_app import TASK_NAME, celery, settings
from worker.execute import execute_job, execute_points
from worker.queue import POINTS_TASK_NAME
from worker.store import JobStore

_store: JobStore | None = None


def store() -> JobStore:
    global _store
    if _store is None:  # one connection pool per worker process, made after the fork
        _store = JobStore.from_settings(settings)
    return _store


@celery.task(name=TASK_NAME)
def run_job(job_id: str) -> str:
    return execute_job(store(), job_id, settings)


@celery.task(name=POINTS_TASK_NAME)
def run_points(job_ids: list[str]) -> dict[str, str]:
    return execute_points(store(), job_ids, settings)
