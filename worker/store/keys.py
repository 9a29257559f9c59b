"""The store's key layout, defined once: every Redis key and channel the service writes, as Python
functions and (``lua_prelude``) as the functions the store's Lua scripts build key names with."""

import re

PREFIX = "ss"

# name: the key's template; its fields are the function's arguments, in order.
LAYOUT = {
    "job": "{prefix}:job:{id}",  # a job's record (a hash)
    "request": "{prefix}:job:{id}:request",  # the request it runs
    "submitted": "{prefix}:job:{id}:submitted",  # the request as submitted, when it differs (a NIR network)
    "result": "{prefix}:job:{id}:result:{fmt}",  # its encoded result, "json" or "npz"
    "live": "{prefix}:job:{id}:live",  # its live chunks (a stream)
    "events": "{prefix}:events:{id}",  # the pub/sub channel of a job's or a sweep's events
    "lease": "{prefix}:lease:{id}",  # a running job's lease
    "state": "{prefix}:state:{state}",  # the ids of the jobs in an active state (a set)
    "owner_jobs": "{prefix}:owner:{owner}:jobs",  # an owner's jobs by creation time (a sorted set)
    "owner_active": "{prefix}:owner:{owner}:active",  # its queued and running jobs (a set)
    "owner_sweeps": "{prefix}:owner:{owner}:sweeps",  # its sweeps by creation time
    "owner_sweep_points": "{prefix}:owner:{owner}:sweep_points",  # how many of its sweeps' points are unfinished
    # what the owner keeps in the store: bytes per record ("job:<id>", "result:<id>", "sweep:<id>")
    # and their "total" (a hash); and when each record expires (a sorted set, +inf while it does not)
    "owner_stored": "{prefix}:owner:{owner}:stored",
    "owner_stored_expiry": "{prefix}:owner:{owner}:stored:expiry",
    "sweep": "{prefix}:sweep:{id}",  # a sweep's record
    "sweep_request": "{prefix}:sweep:{id}:request",  # the sweep as submitted
    "sweep_points": "{prefix}:sweep:{id}:points",  # its points' job ids, in point order (a list)
    "stats": "{prefix}:stats",  # counters of state changes and durations (a hash)
    "resend": "{prefix}:resend",  # requeued jobs whose queue message is still to be sent (a set)
    "workers": "{prefix}:workers:{worker}",  # a live worker's heartbeat ("*" matches them all)
}
_FIELD = re.compile(r"\{(\w+)\}")


def key(name: str, *values: str) -> str:
    """The key ``name`` of ``LAYOUT`` with its fields filled in, in order."""
    fields = [field for field in _FIELD.findall(LAYOUT[name]) if field != "prefix"]
    return LAYOUT[name].format(prefix=PREFIX, **dict(zip(fields, values, strict=True)))


def job_key(job_id: str) -> str:
    return key("job", job_id)


def request_key(job_id: str) -> str:
    return key("request", job_id)


def submitted_key(job_id: str) -> str:
    return key("submitted", job_id)


def result_key(job_id: str, fmt: str) -> str:
    return key("result", job_id, fmt)


def live_key(job_id: str) -> str:
    return key("live", job_id)


def events_channel(record_id: str) -> str:
    return key("events", record_id)


def lease_key(job_id: str) -> str:
    return key("lease", job_id)


def state_set_key(state: str) -> str:
    return key("state", state)


def owner_jobs_key(owner: str) -> str:
    return key("owner_jobs", owner)


def owner_active_key(owner: str) -> str:
    return key("owner_active", owner)


def owner_sweeps_key(owner: str) -> str:
    return key("owner_sweeps", owner)


def owner_sweep_points_key(owner: str) -> str:
    return key("owner_sweep_points", owner)


def owner_stored_key(owner: str) -> str:
    return key("owner_stored", owner)


def sweep_key(sweep_id: str) -> str:
    return key("sweep", sweep_id)


def sweep_request_key(sweep_id: str) -> str:
    return key("sweep_request", sweep_id)


def sweep_points_key(sweep_id: str) -> str:
    return key("sweep_points", sweep_id)


def heartbeat_key(worker: str) -> str:
    """A live worker's heartbeat (``*`` matches them all); it expires when the worker stops beating."""
    return key("workers", worker)


STATS_KEY = key("stats")
RESEND_KEY = key("resend")


def lua_prelude() -> str:
    """``LAYOUT`` as Lua: ``key.job(id)``, ``key.owner_active(owner)``, ``key.stats()``, ..."""
    lines = ["local key = {}"]
    for name, template in LAYOUT.items():
        fields = [field for field in _FIELD.findall(template) if field != "prefix"]
        parts = []
        for piece in _FIELD.split(template.replace("{prefix}", PREFIX)):
            if piece in fields:
                parts.append(piece)
            elif piece:
                parts.append(f"'{piece}'")
        lines.append(f"function key.{name}({', '.join(fields)}) return {' .. '.join(parts)} end")
    return "\n".join(lines) + "\n"
