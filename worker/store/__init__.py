"""The service's own job records, in Redis.

Celery only carries a job id; everything a client sees lives here: state, owner, timestamps,
progress, error, device, the request and the encoded results. Celery's own task states are never
consulted (its PENDING means "unknown", not "queued").

The package: the key layout (``keys``), the Lua scripts that change state atomically
(``scripts``, from ``lua/``), the records as Python sees them (``records``), the operations both
faces run (``calls``), and the faces: ``JobStore`` (blocking, for the workers) and
``AsyncJobStore`` (the API's event loop).
"""

from worker.store.aio import AsyncJobStore
from worker.store.keys import PREFIX, STATS_KEY, events_channel, heartbeat_key, live_key, state_set_key
from worker.store.records import (
    ACTIVE_STATES,
    DURATION_BUCKETS,
    FINAL_STATES,
    POINT_FIELDS,
    POINT_STATUS_FIELDS,
    STATES,
    Claim,
    InFlightLimit,
    Job,
    StorageQuota,
    Submission,
    Success,
    Sweep,
    duration_bucket,
    new_submission,
)
from worker.store.scripts import LIVE_TTL_S
from worker.store.sync import LIVE_IDLE_TTL_S, LIVE_MAX_CHUNKS, JobStore

__all__ = [
    "ACTIVE_STATES", "DURATION_BUCKETS", "FINAL_STATES", "LIVE_IDLE_TTL_S", "LIVE_MAX_CHUNKS", "LIVE_TTL_S", "POINT_FIELDS",
    "POINT_STATUS_FIELDS", "PREFIX", "STATES", "STATS_KEY", "AsyncJobStore", "Claim", "InFlightLimit", "Job", "JobStore",
    "StorageQuota", "Submission", "Success", "Sweep", "duration_bucket", "events_channel", "heartbeat_key", "live_key",
    "new_submission", "state_set_key",
]  # fmt: skip
