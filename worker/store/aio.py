"""The store on the API's event loop (``redis.asyncio``): the same operations as the workers'
``JobStore`` (``worker.store.calls``), and the reads of the API's routes."""

from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from worker.broker import QUEUE_KEY
from worker.store import calls
from worker.store.calls import Call
from worker.store.keys import (
    STATS_KEY,
    heartbeat_key,
    job_key,
    live_key,
    owner_jobs_key,
    request_key,
    result_key,
    state_set_key,
    submitted_key,
    sweep_key,
    sweep_points_key,
    sweep_request_key,
)
from worker.store.records import ACTIVE_STATES, POINT_FIELDS, Job, Submission, Sweep
from worker.store.scripts import SCRIPTS

T = TypeVar("T")


class AsyncJobStore:
    """The store on the API's event loop: every call of the API's routes, without a thread hop."""

    def __init__(self, client: aioredis.Redis, job_ttl_s: int = 7 * 24 * 3600) -> None:
        # Any: redis-py types every reply as bytes | str (| awaitable); this client answers bytes
        self.redis: Any = client
        self.job_ttl_s = job_ttl_s
        self._scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}

    async def _run(self, call: Call[T]) -> T:
        return call.parse(await self._scripts[call.script](keys=call.keys, args=call.args))

    async def submit(self, submission: Submission) -> Job:
        """Records the job and its queue message (``JobStore.submit``)."""
        return await self._run(calls.submit(submission))

    async def stored_bytes(self, owner: str) -> int:
        return await self._run(calls.stored_bytes(owner))

    async def purge(self, job_id: str) -> str:
        return await self._run(calls.purge(job_id))

    async def purge_sweep(self, sweep_id: str) -> str:
        return await self._run(calls.purge_sweep(sweep_id))

    async def request_cancel(self, job_id: str) -> Job | None:
        """``JobStore.request_cancel``: the job after its cancel was asked for."""
        await self._run(calls.cancel(job_id, self.job_ttl_s))
        return await self.get(job_id)

    async def cancel_sweep(self, sweep_id: str) -> bool:
        return await self._run(calls.cancel_sweep(sweep_id, self.job_ttl_s))

    async def create_sweep(self, *args: Any, **kwargs: Any) -> Sweep:
        """``worker.store.calls.create_sweep``, which says what each argument is."""
        return await self._run(calls.create_sweep(*args, **kwargs))

    async def list_owned(self, owner: str, offset: int, limit: int) -> tuple[list[Job], int]:
        return await self._run(calls.jobs_page(owner, offset, limit))

    async def list_sweeps(self, owner: str, offset: int, limit: int) -> tuple[list[Sweep], int]:
        return await self._run(calls.sweeps_page(owner, offset, limit))

    async def reassign(self, old_owner: str, new_owner: str) -> int:
        return await self._run(calls.reassign(old_owner, new_owner))

    async def owned_count(self, owner: str) -> int:
        return int(await self.redis.zcard(owner_jobs_key(owner)))

    async def request_json(self, job_id: str) -> bytes | None:
        """The request as the client submitted it."""
        submitted, run = await self.redis.mget(submitted_key(job_id), request_key(job_id))
        return submitted or run

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except redis.RedisError:
            return False

    async def workers(self) -> int:
        """How many workers sent a heartbeat recently."""
        return len([name async for name in self.redis.scan_iter(heartbeat_key("*"))])

    async def stats(self) -> dict[str, float]:
        return {k.decode(): float(v) for k, v in (await self.redis.hgetall(STATS_KEY)).items()}

    async def active_counts(self) -> dict[str, int]:
        return {state: int(await self.redis.scard(state_set_key(state))) for state in ACTIVE_STATES}

    async def queue_depth(self) -> int:
        return int(await self.redis.llen(QUEUE_KEY))

    async def get(self, job_id: str) -> Job | None:
        return Job.from_raw(await self.redis.hgetall(job_key(job_id)))

    async def state(self, job_id: str) -> str | None:
        state = await self.redis.hget(job_key(job_id), "state")
        return None if state is None else state.decode()

    async def get_with_result(self, job_id: str, fmt: str, first_bytes: int) -> tuple[Job | None, bytes | None, int]:
        """The job, the first ``first_bytes`` of its result and the result's size (0: none), in
        one round trip; a larger result is read on with ``result_range``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(job_key(job_id))
            pipe.getrange(result_key(job_id, fmt), 0, first_bytes - 1)
            pipe.strlen(result_key(job_id, fmt))
            data, head, size = await pipe.execute()
        return Job.from_raw(data), (head if size else None), size

    async def result_whole(self, job_id: str, fmt: str) -> bytes | None:
        return await self.redis.get(result_key(job_id, fmt))

    async def sweep(self, sweep_id: str) -> "Sweep | None":
        return Sweep.from_raw(await self.redis.hgetall(sweep_key(sweep_id)))

    async def sweep_axes(self, sweep_id: str) -> bytes | None:
        """What the sweep's summary table needs (``worker.simulation.sweep.table_axes``, JSON);
        None for a sweep recorded without it."""
        return await self.redis.hget(sweep_key(sweep_id), "axes") or None

    async def sweep_request(self, sweep_id: str) -> bytes | None:
        return await self.redis.get(sweep_request_key(sweep_id))

    async def sweep_points(self, sweep_id: str, fields: tuple[str, ...] = POINT_FIELDS) -> list[dict[str, str]]:
        """Every point's record ``fields`` (default: id, state, steps, error, wall_s, summary), in
        point order, in two round trips; an expired point's entry has its id only."""
        ids = [raw.decode() for raw in await self.redis.lrange(sweep_points_key(sweep_id), 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(job_key(job_id), *fields)
            replies = await pipe.execute()
        return [
            {"id": job_id, **{name: value.decode() for name, value in zip(fields, reply, strict=True) if value is not None}}
            for job_id, reply in zip(ids, replies, strict=True)
        ]

    async def live_after(self, job_id: str, after: str) -> list[tuple[str, bytes]]:
        """The job's live chunks (stream id, chunk JSON) newer than the id ``after`` ("0": all)."""
        entries = await self.redis.xrange(live_key(job_id), min=f"({after}" if after != "0" else "-", max="+")
        return [(entry_id.decode(), fields[b"chunk"]) for entry_id, fields in entries]

    async def result_range(self, job_id: str, fmt: str, start: int, stop: int) -> bytes:
        """Bytes ``start`` to ``stop - 1`` of the result: large results are sent in pieces, so no
        reply holds a connection for long and no API process holds a whole result."""
        return await self.redis.getrange(result_key(job_id, fmt), start, stop - 1)
