"""Room in the job store for new jobs: the API refuses them before Redis would refuse writes.

Redis runs with a memory limit and ``noeviction`` (``spikeserve serve`` and the compose file start
it so): beyond its limit every write fails, the state changes and results of jobs already
accepted included. So the API stops accepting jobs and sweeps at a share of that limit
(``store_full_fraction``), keeping the rest for the results of the jobs that run; each key's own
quota (``max_stored_bytes_per_key``, in the store's submit scripts) keeps one key from taking it all.
"""

import asyncio

import redis.asyncio as aioredis

READ_EVERY_S = 0.5  # Redis's memory is read at most this often; what is admitted meanwhile is added


class StoreFull(Exception):
    """The job store is too full to accept a new job or sweep."""

    def __init__(self, used: int, limit: int) -> None:
        super().__init__(
            f"the job store is full ({used:,} of the {limit:,} bytes it accepts new jobs up to); "
            "retry later, or delete finished jobs and sweeps"
        )


class StoreCapacity:
    """``await check(adding)`` raises StoreFull when Redis's used memory plus ``adding`` bytes would
    pass ``fraction`` of its maxmemory (no limit: never). One read of ``INFO memory`` serves every
    check for READ_EVERY_S, the bytes admitted since counted on top of it."""

    def __init__(self, client: aioredis.Redis, fraction: float) -> None:
        self.client = client
        self.fraction = fraction
        self._used = 0
        self._limit = 0
        self._read_at = -READ_EVERY_S
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            if loop.time() - self._read_at < READ_EVERY_S:
                return
            memory = await self.client.info("memory")
            self._used = int(memory["used_memory"])
            self._limit = int(int(memory.get("maxmemory", 0)) * self.fraction)
            self._read_at = loop.time()

    async def check(self, adding: int) -> None:
        if asyncio.get_running_loop().time() - self._read_at >= READ_EVERY_S:
            await self._refresh()
        if self._limit and self._used + adding > self._limit:
            raise StoreFull(self._used, self._limit)
        self._used += adding
