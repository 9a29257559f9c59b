"""Celery tasks: thin wrappers over worker.execute."""

from worker.celery_app import TASK_NAME, celery, settings
from worker.execute import execute_job
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
