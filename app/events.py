"""A job's status as it changes: Server-Sent Events for a stream, and the wait behind long polls.

Every stream and long poll of an API process shares one Redis pub/sub connection (``EventHub``):
the hub subscribes to all jobs' event channels once, and hands each message to the listeners of
its job. A connection per stream ran the Redis pool dry at about 100 streams. Listeners also
re-read the job's record now and then, and at once after the hub reconnects, so a message lost
while Redis restarted never stalls a stream.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from app.store import FINAL_STATES, PREFIX, AsyncJobReader

log = logging.getLogger(__name__)
REREAD_S = 5.0  # a listener re-reads the record at least this often
CHANNELS = f"{PREFIX}:events:*"


@dataclass(eq=False)
class Listener:
    """The newest event for one job, and a flag raised whenever it changes."""

    job_id: str
    latest: dict | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, event: dict | None) -> None:
        """``None`` asks the listener to re-read the record (the hub reconnected)."""
        if event is not None:
            self.latest = event
        self.changed.set()

    async def wait(self, timeout_s: float) -> dict | None:
        """The newest event once one arrives (or the hub asks for a re-read); None on timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout_s)
        self.changed.clear()
        event, self.latest = self.latest, None
        return event


class EventHub:
    """One pub/sub connection per process, fanned out to any number of listeners."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._listeners: dict[str, set[Listener]] = {}
        self._task: asyncio.Task | None = None

    @property
    def listening(self) -> int:
        return sum(len(group) for group in self._listeners.values())

    @contextlib.contextmanager
    def listen(self, job_id: str) -> Iterator[Listener]:
        """Events for ``job_id`` from now on (register before reading the record: nothing is missed)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spikeserve-event-hub")
        listener = Listener(job_id)
        self._listeners.setdefault(job_id, set()).add(listener)
        try:
            yield listener
        finally:
            group = self._listeners.get(job_id)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self._listeners[job_id]

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.psubscribe(CHANNELS)
                backoff = 0.1
                self._broadcast_reread()  # anything may have happened while we were not subscribed
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=REREAD_S)
                    if message is not None:
                        self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis restarted or unreachable: reconnect with backoff
                log.warning("event hub lost its Redis subscription (%r); reconnecting", error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, message: dict) -> None:
        channel = message["channel"].decode()
        group = self._listeners.get(channel.rpartition(":")[2])
        if not group:
            return
        try:
            event = json.loads(message["data"])
        except (ValueError, TypeError):
            return
        for listener in group:
            listener.push(event)

    def _broadcast_reread(self) -> None:
        for group in self._listeners.values():
            for listener in group:
                listener.push(None)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _snapshot(job: object) -> dict:
    return {"status": job.state, "steps_done": job.steps_done, "steps_total": job.steps_total}  # type: ignore[attr-defined]


async def job_events(reader: AsyncJobReader, hub: EventHub, job_id: str) -> AsyncIterator[dict[str, str]]:
    """SSE messages (``event: status``) for the job, in order and without repeats, ending with its final state."""
    last: dict | None = None

    def newer(event: dict) -> bool:
        nonlocal last
        if last is not None and _not_newer(event, last):
            return False
        last = event
        return True

    with hub.listen(job_id) as listener:
        event: dict | None = None
        while True:
            if event is None:  # a timeout or a reconnect: read the record itself
                job = await reader.get(job_id)
                if job is None:
                    return
                event = _snapshot(job)
            if newer(event):
                yield {"event": "status", "data": json.dumps(event)}
            if last is not None and last["status"] in FINAL_STATES:
                return
            event = await listener.wait(REREAD_S)


async def wait_final(reader: AsyncJobReader, hub: EventHub, job_id: str, wait_s: float) -> None:
    """Returns once the job is final (or gone), or after ``wait_s`` seconds, whichever is first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    with hub.listen(job_id) as listener:  # listening before the first read
        state = await reader.state(job_id)
        while state is not None and state not in FINAL_STATES:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            event = await listener.wait(min(REREAD_S, remaining))
            state = event["status"] if event is not None else await reader.state(job_id)


def _not_newer(event: dict, last: dict) -> bool:
    """Events arrive from two sources (messages and re-reads); keep them in order, without repeats."""
    order = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}
    if order[event["status"]] != order[last["status"]]:
        return order[event["status"]] < order[last["status"]]
    return event["steps_done"] <= last["steps_done"]


class StreamSlots:
    """Per-key count of open streams and long polls in this process, with a cap (429 beyond it)."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: dict[str, int] = {}

    def try_acquire(self, owner: str) -> bool:
        if self._open.get(owner, 0) >= self.per_key:
            return False
        self._open[owner] = self._open.get(owner, 0) + 1
        return True

    def release(self, owner: str) -> None:
        left = self._open.get(owner, 0) - 1
        if left > 0:
            self._open[owner] = left
        else:
            self._open.pop(owner, None)
