"""A job's status as it changes: Server-Sent Events for a stream, and the wait behind long polls.

Every stream and long poll of an API process shares one Redis pub/sub connection (``EventHub``):
the hub subscribes to the event channels of the jobs that are followed, and hands each message
to the listeners of its job. A connection per stream ran the Redis pool dry at about 100
streams. Listeners also re-read the job's record now and then, and at once after the hub
reconnects, so a message lost while Redis restarted never stalls a stream.
"""

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from fastapi.responses import StreamingResponse
from redis.asyncio.client import PubSub

from worker.store import FINAL_STATES, PREFIX, AsyncJobStore, events_channel

log = logging.getLogger(__name__)
# A listener re-reads the record when the hub reconnects, and as a safety net at least this
# often, at a random point in the period: re-reads of streams opened together must not come
# together (1,000 at once held the event loop for 0.2 s).
REREAD_S = 15.0
HUB_CHANNEL = f"{PREFIX}:events:hub"
DISPATCH_BATCH = 50
SWEEP_READ_INTERVAL_S = 0.025  # a sweep's stream reads its status at most this often


def reread_after() -> float:
    return REREAD_S * random.uniform(0.5, 1.0)


@dataclass(eq=False)
class Listener:
    """The newest event for one job, for the one coroutine that follows it."""

    job_id: str
    latest: dict | None = None
    _flagged: bool = False
    _waiter: asyncio.Future | None = None

    def push(self, event: dict | None) -> None:
        """``None`` asks the listener to re-read the record (the hub reconnected). An event older
        than the one waiting (a late progress report after the final state) never replaces it."""
        if event is not None and (self.latest is None or not _not_newer(event, self.latest)):
            self.latest = event
        self._flagged = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, timeout_s: float) -> dict | None:
        """The newest event once one arrives (or the hub asks for a re-read); None on timeout.
        A future and a timer, no task: thousands of listeners wake on every message."""
        if not self._flagged:
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            timer = loop.call_later(timeout_s, _wake, self._waiter)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None
        self._flagged = False
        event, self.latest = self.latest, None
        return event


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventHub:
    """One pub/sub connection per process, fanned out to any number of listeners.

    The hub subscribes to the channels of the jobs (and sweeps) that have listeners, not to every
    job's: an API process reads the events of the jobs it follows only. (Subscribed to all of
    them by a pattern, an API process parsed two messages of every tiny job it did not follow,
    a tenth of its CPU under a stream of them, and every API process more of them as workers
    were added.) One task keeps the subscriptions in step with the listeners, in order; Redis
    confirms each subscription with a message, and the listeners of that channel then re-read
    their record: an event published between a listener's first read and its subscription is
    not lost. After a reconnect the same confirmations make every listener re-read.

    Give it a client without retries: a connection that redis-py re-established by itself would
    hide the outage, and the listeners would not know to re-read what they missed meanwhile.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._listeners: dict[str, set[Listener]] = {}
        self._task: asyncio.Task | None = None
        self._pubsub: PubSub | None = None  # the connection while it is up
        self._followed_changed = asyncio.Event()

    @property
    def listening(self) -> int:
        return sum(len(group) for group in self._listeners.values())

    @contextlib.contextmanager
    def listen(self, job_id: str) -> Iterator[Listener]:
        """Events for ``job_id`` from now on (register before reading the record: nothing is missed)."""
        if self._task is None or self._task.done():
            self._followed_changed = asyncio.Event()  # bound to this event loop, as the task
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spikeserve-event-hub")
        listener = Listener(job_id)
        group = self._listeners.setdefault(job_id, set())
        group.add(listener)
        if len(group) == 1:
            self._followed_changed.set()
        try:
            yield listener
        finally:
            group.discard(listener)
            if not group and self._listeners.get(job_id) is group:
                del self._listeners[job_id]
                self._followed_changed.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._pubsub = self.client.pubsub()
            subscriber: asyncio.Task | None = None
            try:
                await pubsub.subscribe(HUB_CHANNEL)  # the connection stays subscribed while no job is followed
                backoff = 0.1
                self._followed_changed.set()  # subscribe afresh to every followed job
                subscriber = asyncio.get_running_loop().create_task(self._follow(pubsub), name="spikeserve-event-subscriptions")
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        await self._dispatch(message)
                    if subscriber.done():
                        subscriber.result()  # it failed: reconnect
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis restarted or unreachable: reconnect with backoff
                log.warning("event hub lost its Redis subscription (%r); reconnecting", error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                self._pubsub = None
                if subscriber is not None:
                    await _stop(subscriber, self._followed_changed)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _follow(self, pubsub: PubSub) -> None:
        """Subscribes to the channels of followed jobs and unsubscribes from the others, one
        change after another (so an unsubscribe never overtakes a later subscribe), for as long
        as ``pubsub`` is the hub's connection."""
        subscribed: set[str] = set()
        while True:
            await self._followed_changed.wait()
            if pubsub is not self._pubsub:
                return
            self._followed_changed.clear()
            followed = set(self._listeners)
            new, gone = followed - subscribed, subscribed - followed
            subscribed = followed
            if new:
                await pubsub.subscribe(*map(events_channel, new))
            if gone:
                await pubsub.unsubscribe(*map(events_channel, gone))

    async def _dispatch(self, message: dict) -> None:
        kind = message["type"]
        if kind not in ("message", "subscribe"):
            return
        group = self._listeners.get(message["channel"].decode().rpartition(":")[2])
        if not group:
            return
        event = None  # a confirmed subscription: re-read the record
        if kind == "message":
            try:
                event = json.loads(message["data"])
            except (ValueError, TypeError):
                return
        for count, listener in enumerate(list(group), 1):
            listener.push(event)
            if count % DISPATCH_BATCH == 0:  # let other requests in between: 500 wake-ups at once stalled them
                await asyncio.sleep(0)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def _stop(follower: asyncio.Task, wake: asyncio.Event) -> None:
    """Ends the subscriptions task of a connection that is going: woken, it sees that and returns
    (a cancel alone was seen to leave it running, cancelled while inside a redis-py command); one
    still in a command is cancelled. Its error, if any, is taken so that none goes unreported."""
    wake.set()
    await asyncio.wait([follower], timeout=1.0)
    while not follower.done():
        follower.cancel()
        await asyncio.wait([follower], timeout=1.0)
    if not follower.cancelled():
        follower.exception()


def _snapshot(job: object) -> dict:
    return {"status": job.state, "steps_done": job.steps_done, "steps_total": job.steps_total}  # type: ignore[attr-defined]


def sse(event: dict) -> bytes:
    """One Server-Sent Event of type ``status``."""
    return b"event: status\r\ndata: " + json.dumps(event).encode() + b"\r\n\r\n"


def spikes_sse(entry_id: str, chunk: bytes) -> bytes:
    """One Server-Sent Event of type ``spikes``: a chunk's live spikes, with the stream entry's id
    (a client that reconnects with ``Last-Event-ID`` resumes after it)."""
    return b"id: " + entry_id.encode() + b"\r\nevent: spikes\r\ndata: " + chunk + b"\r\n\r\n"


PING = b": ping\r\n\r\n"  # a comment line: keeps proxies from closing a quiet stream


async def job_events(
    reader: AsyncJobStore, hub: EventHub, job_id: str, ping_s: float = 15.0, after: str = "0"
) -> AsyncIterator[bytes]:
    """The job's status events as Server-Sent Events, in order and without repeats, ending with
    its final state; a ping after ``ping_s`` quiet seconds. Before each status event of a job with
    ``record.live`` layers come its live chunks newer than the stream id ``after`` and still kept:
    the worker stores a chunk before it reports the progress that wakes this stream."""
    loop = asyncio.get_running_loop()
    last: dict | None = None
    live = False
    with hub.listen(job_id) as listener:
        event: dict | None = None
        read_at = sent_at = 0.0
        period = reread_after()
        while True:
            if event is None or loop.time() - read_at > period:  # also while events flow: one may be lost
                job = await reader.get(job_id)
                if job is None:
                    return
                live = job.live
                read_at = loop.time()
                if event is None or not _not_newer(_snapshot(job), event):
                    event = _snapshot(job)
            for entry_id, chunk in await reader.live_after(job_id, after) if live else ():
                after = entry_id
                sent_at = loop.time()
                yield spikes_sse(entry_id, chunk)
            if last is None or not _not_newer(event, last):
                last = event
                sent_at = loop.time()
                yield sse(event)
            elif loop.time() - sent_at > ping_s:
                sent_at = loop.time()
                yield PING
            if last["status"] in FINAL_STATES:
                return
            event = await listener.wait(min(period, ping_s))


async def sweep_events(
    hub: EventHub, sweep_id: str, read_status: Callable[[], Awaitable[dict | None]], period_s: float = 1.0, ping_s: float = 15.0
) -> AsyncIterator[bytes]:
    """A sweep's status (``read_status()``) as Server-Sent Events whenever it changed: at once when
    one of its points ends, and every ``period_s`` while points run (their steps); the stream
    ends with the final state."""
    loop = asyncio.get_running_loop()
    last: dict | None = None
    sent_at = loop.time()
    read_at = sent_at - SWEEP_READ_INTERVAL_S
    event: dict | None = None
    with hub.listen(sweep_id) as listener:
        while True:
            # points of a batch end together: one read for all of them (a read costs a round trip
            # per point), but the end of the last one is read at once
            if event is None or event.get("ended", 0) < event.get("points", 1):
                await asyncio.sleep(max(0.0, read_at + SWEEP_READ_INTERVAL_S - loop.time()))
            read_at = loop.time()
            current = await read_status()
            if current is None:
                return
            if current != last:
                last = current
                sent_at = loop.time()
                yield sse(current)
            elif loop.time() - sent_at > ping_s:
                sent_at = loop.time()
                yield PING
            if current["status"] in FINAL_STATES:
                return
            event = await listener.wait(period_s)


async def wait_final(reader: AsyncJobStore, hub: EventHub, job_id: str, wait_s: float) -> None:
    """Returns once the job is final (or gone), or after ``wait_s`` seconds, whichever is first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    with hub.listen(job_id) as listener:  # listening before the first read
        state = await reader.state(job_id)
        while state is not None and state not in FINAL_STATES:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            event = await listener.wait(min(reread_after(), remaining))
            state = event["status"] if event is not None else await reader.state(job_id)


def _not_newer(event: dict, last: dict) -> bool:
    """Events arrive from two sources (messages and re-reads); keep them in order, without repeats.
    A sweep's events count its ended points."""
    if "ended" in event or "ended" in last:
        return event.get("ended", 0) <= last.get("ended", 0)
    order = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}
    if order[event["status"]] != order[last["status"]]:
        return order[event["status"]] < order[last["status"]]
    return event["steps_done"] <= last["steps_done"]


class SharedReads:
    """One read per key at a time, its result shared: what ``read(key, fetch)`` returns was
    fetched at most ``fresh_s`` ago, and callers that come while a fetch runs wait for that one.

    Each stream of a sweep reads every point's record (1,000 round trips' worth for a 1,000-point
    sweep); 64 streams of one sweep, each reading every 25 ms, held /healthz up to 0.8 s. Shared,
    they cost what one stream does."""

    def __init__(self, fresh_s: float) -> None:
        self.fresh_s = fresh_s
        self._fetched: dict[str, tuple[float, object]] = {}
        self._running: dict[str, asyncio.Future] = {}

    async def read(self, key: str, fetch: Callable[[], Awaitable[object]]) -> object:
        loop = asyncio.get_running_loop()
        fetched = self._fetched.get(key)
        if fetched is not None and loop.time() - fetched[0] < self.fresh_s:
            return fetched[1]
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(self._fetch(key, fetch))
        return await asyncio.shield(running)  # a caller that goes away leaves the fetch to the others

    async def _fetch(self, key: str, fetch: Callable[[], Awaitable[object]]) -> object:
        loop = asyncio.get_running_loop()
        try:
            value = await fetch()
        finally:
            del self._running[key]
        now = loop.time()
        self._fetched = {k: v for k, v in self._fetched.items() if now - v[0] < self.fresh_s}  # no stale entries kept
        self._fetched[key] = (now, value)
        return value


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


class EventStream(StreamingResponse):
    """``text/event-stream`` that gives its key's slot back however it ends (finished, client gone).

    Starlette's streaming response costs one ``send`` per event; the event fan-out of 500 streams
    through sse-starlette took the event loop about 100 ms per message here, stalling every other
    request, so events are formatted once (app.events.sse) and written as they are.
    """

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], release: Any) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()
