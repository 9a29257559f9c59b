"""What the store keeps, as Python sees it: job and sweep records, a worker's claim on a job, a
success to store, and a new job ready to submit; the states a job moves through."""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.broker import QUEUE_KEY
from worker.store.keys import (
    STATS_KEY,
    job_key,
    owner_active_key,
    owner_jobs_key,
    request_key,
    state_set_key,
    submitted_key,
)

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0)
POINT_FIELDS = ("state", "steps_done", "steps_total", "error", "wall_s", "summary")  # a summary table's
POINT_STATUS_FIELDS = POINT_FIELDS[:3]  # a sweep's status


def duration_bucket(wall_s: float) -> list[float]:
    """The smallest bucket bound a job's duration falls under (none past the last). The stats
    count jobs per bucket, ``duration_in:<bound>``, and the metrics add them up: one counter per
    job instead of one per bucket it is under."""
    return [bound for bound in DURATION_BUCKETS if wall_s <= bound][:1]


@dataclass
class Sweep:
    id: str
    owner: str
    created_at: float
    finished_at: float | None
    points: int
    mode: str
    ended: dict[str, int]  # points that ended, by final state
    cancel_requested: bool

    @classmethod
    def from_raw(cls, data: dict[bytes, bytes]) -> "Sweep | None":
        if not data:
            return None
        fields = {key.decode(): value.decode() for key, value in data.items()}
        return cls(
            id=fields["id"],
            owner=fields["owner"],
            created_at=float(fields["created_at"]),
            finished_at=float(fields["finished_at"]) if fields.get("finished_at") else None,
            points=int(fields["points"]),
            mode=fields["mode"],
            ended={state: int(fields.get(state, 0)) for state in FINAL_STATES},
            cancel_requested=fields.get("cancel") == "1",
        )

    @property
    def is_final(self) -> bool:
        return sum(self.ended.values()) >= self.points


@dataclass
class Job:
    id: str
    owner: str
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    steps_done: int
    steps_total: int
    error: str | None
    device: str | None
    attempts: int
    cancel_requested: bool
    live: bool = False  # its event stream carries live spikes (record.live)
    name: str | None = None  # the request's label
    wall_s: float | None = None  # how long its successful run took
    spikes: int | None = None  # spike events in its result, every recorded layer together
    warnings: list[str] = field(default_factory=list)  # what its request may not mean as written

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> "Job":
        def number(key: str) -> float | None:
            return float(data[key]) if data.get(key) else None

        return cls(
            id=data["id"],
            owner=data["owner"],
            state=data["state"],
            created_at=float(data["created_at"]),
            started_at=number("started_at"),
            finished_at=number("finished_at"),
            steps_done=int(data.get("steps_done", 0)),
            steps_total=int(data.get("steps_total", 0)),
            error=data.get("error") or None,
            device=data.get("device") or None,
            attempts=int(data.get("attempts", 0)),
            cancel_requested=data.get("cancel") == "1",
            live=data.get("live") == "1",
            name=data.get("name") or None,
            wall_s=number("wall_s"),
            spikes=sum(layer["spikes"] for layer in json.loads(data["summary"]).values()) if data.get("summary") else None,
            warnings=json.loads(data["warnings"]) if data.get("warnings") else [],
        )

    @classmethod
    def from_raw(cls, data: dict[bytes, bytes]) -> "Job | None":
        """From the record as Redis returns it (bytes); None for a missing record."""
        return cls.from_hash({k.decode(): v.decode() for k, v in data.items()}) if data else None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class InFlightLimit(Exception):
    """The owner already has the maximum number of queued and running jobs."""


class StorageQuota(Exception):
    """The owner's requests and results in the store would pass its quota."""

    def __init__(self, stored: int, adding: int, quota: int) -> None:
        super().__init__(
            f"this key keeps {stored:,} bytes of requests and results in the job store, and this one adds {adding:,}: "
            f"over its quota of {quota:,} bytes; delete finished jobs or sweeps (DELETE with ?purge=true) "
            f"or wait for them to expire"
        )
        self.stored, self.adding, self.quota = stored, adding, quota


NO_QUOTA = 2**62  # the quota of a store call given none


def check_submitted(reply: list[Any], refusal: str, adding: int, quota: int) -> None:
    """A submit script's reply: {1} recorded, {0} too many in flight, {-1, stored} over the quota."""
    if reply[0] == 0:
        raise InFlightLimit(refusal)
    if reply[0] == -1:
        raise StorageQuota(int(reply[1]), adding, quota)


@dataclass(frozen=True)
class Claim:
    """A worker's attempt to start a job: started with its request, or why not."""

    started: bool
    state: str | None
    request: bytes | None = None
    cancel_requested: bool = False


@dataclass(frozen=True)
class Success:
    """A run that succeeded, encoded, as ``JobStore.succeed_many`` stores it."""

    job_id: str
    result_json: bytes
    result_npz: bytes
    neuron_steps: int
    wall_s: float
    lease_token: str = ""
    summary: bytes = b"{}"  # JSON: spikes and mean rate per recorded layer, kept in the record


@dataclass(frozen=True)
class Submission:
    """A new job as the submit script takes it (keys and arguments), and its record as written."""

    job: Job
    keys: list[str]
    args: list[Any]
    refusal: str  # why it is refused when the owner has too many jobs in flight
    quota: int = NO_QUOTA  # the bytes the owner may keep in the store

    @property
    def bytes(self) -> int:
        """What the job keeps in the store: its request, and the request as submitted if different."""
        return len(self.args[4]) + len(self.args[6])


def new_submission(
    owner: str,
    request_json: bytes | memoryview,
    steps_total: int,
    max_in_flight: int,
    submitted: bytes | memoryview = b"",
    message: Callable[[str], bytes] | None = None,
    live: bool = False,
    name: str | None = None,
    quota: int = NO_QUOTA,
    warnings: list[str] | None = None,
) -> Submission:
    """A new queued job that runs ``request_json``; ``submitted`` is the request as the client
    sent it, when that differs (a NIR network, expanded to layers for the worker).
    ``message(job_id)``, when given, is the job's queue message, pushed onto ``QUEUE_KEY`` in the
    same atomic script: a job is never recorded without its message, nor the reverse. ``live``:
    the request names layers in ``record.live`` (its event stream reads them); ``name``: the
    request's label, kept for job lists; ``quota``: the bytes the owner may keep in the store;
    ``warnings``: what the request may not mean as written, kept in the record.
    Submitted by ``JobStore.submit`` or, on the API's event loop, ``AsyncJobStore.submit``."""
    job_id = uuid.uuid4().hex
    now = time.time()
    keys = [
        job_key(job_id),
        request_key(job_id),
        owner_jobs_key(owner),
        owner_active_key(owner),
        state_set_key("queued"),
        STATS_KEY,
        submitted_key(job_id),
        QUEUE_KEY,
    ]
    queued = message(job_id) if message is not None else b""
    noted = json.dumps(warnings) if warnings else ""
    args: list[Any] = [job_id, owner, now, steps_total, request_json, max_in_flight, submitted, queued, int(live), name or ""]
    args += [quota, noted]
    # the record as the script writes it, without reading it back
    written = {"id": job_id, "owner": owner, "state": "queued", "created_at": repr(now), "steps_total": str(steps_total)}
    written |= ({"live": "1"} if live else {}) | ({"name": name} if name else {}) | ({"warnings": noted} if noted else {})
    job = Job.from_hash(written)
    return Submission(job, keys, args, f"{max_in_flight} jobs are already queued or running for this key", quota)


def claim_of(reply: Any) -> "Claim":
    """A claim script's reply: {1, request} started, {0 or 2, state} refused (2: cancel asked), {} unknown."""
    if not reply:
        return Claim(started=False, state=None)
    code, value = reply[0], reply[1]
    if code == 1:
        return Claim(started=True, state="running", request=value or None)
    return Claim(started=False, state=value.decode(), cancel_requested=code == 2)
