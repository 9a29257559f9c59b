"""Celery tasks: thin wrappers over worker.execute."""

from app.store import JobStore
from worker.celery_app import TASK_NAME, celery, settings
from worker.execute import execute_job

_store: JobStore | None = None


def store() -> JobStore:
    global _store
    if _store is None:  # one connection pool per worker process, made after the fork
        _store = JobStore.from_url(settings.redis_url, job_ttl_s=settings.job_ttl_s, result_ttl_s=settings.result_ttl_s)
    return _store


@celery.task(name=TASK_NAME)
def run_job(job_id: str) -> str:
    return execute_job(store(), job_id, settings)
