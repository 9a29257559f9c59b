"""A job's status as it changes: Server-Sent Events for a stream, and the wait behind long polls."""

import contextlib
import json
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from app.store import FINAL_STATES, AsyncJobReader, events_channel

POLL_S = 1.0  # also re-read the record this often: a missed message (Redis restart) must not stall a stream


async def job_events(reader: AsyncJobReader, job_id: str) -> AsyncIterator[dict[str, str]]:
    pubsub = reader.redis.pubsub()
    await pubsub.subscribe(events_channel(job_id))  # subscribe first, then read: nothing falls in between
    last: dict | None = None

    def newer(event: dict) -> bool:
        nonlocal last
        if last is not None and _not_newer(event, last):
            return False
        last = event
        return True

    try:
        while True:
            job = await reader.get(job_id)
            if job is None:
                return
            snapshot = {"status": job.state, "steps_done": job.steps_done, "steps_total": job.steps_total}
            if newer(snapshot):
                yield {"event": "status", "data": json.dumps(snapshot)}
            if last is not None and last["status"] in FINAL_STATES:
                return
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
            while message is not None:
                event = json.loads(message["data"])
                if newer(event):
                    yield {"event": "status", "data": json.dumps(event)}
                if event["status"] in FINAL_STATES:
                    return
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
    finally:
        await pubsub.aclose()


class Subscribers:
    """Pub/sub connections kept for reuse by long polls.

    Closing a redis-py PubSub drops its connection, and a new one costs a TCP connect and a
    handshake: measured here, that was an eighth of the API's CPU time per job. A kept connection
    may still deliver a message for its previous channel; a long poll only re-reads the job's
    state on any message, so that is harmless.
    """

    def __init__(self, client: aioredis.Redis, keep: int = 32) -> None:
        self.client = client
        self.keep = keep
        self.free: list[PubSub] = []

    @contextlib.asynccontextmanager
    async def channel(self, name: str) -> AsyncIterator[PubSub]:
        pubsub = self.free.pop() if self.free else self.client.pubsub()
        reusable = False
        try:
            await pubsub.subscribe(name)
            yield pubsub
            await pubsub.unsubscribe(name)
            reusable = len(self.free) < self.keep
        finally:
            if reusable:
                self.free.append(pubsub)
            else:  # an error or a cancel may have left a reply half read: never reuse such a connection
                await pubsub.aclose()


async def wait_final(reader: AsyncJobReader, subscribers: Subscribers, job_id: str, wait_s: float) -> None:
    """Returns once the job is final (or gone), or after ``wait_s`` seconds, whichever is first."""
    deadline = time.monotonic() + wait_s
    async with subscribers.channel(events_channel(job_id)) as pubsub:  # subscribed before the first read
        while True:
            state = await reader.state(job_id)
            remaining = deadline - time.monotonic()
            if state is None or state in FINAL_STATES or remaining <= 0:
                return
            # any message (or a quiet POLL_S, in case one was missed) means: read the state again
            await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(POLL_S, remaining))


def _not_newer(event: dict, last: dict) -> bool:
    """Events arrive from two sources (messages and re-reads); keep them in order, without repeats."""
    order = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}
    if order[event["status"]] != order[last["status"]]:
        return order[event["status"]] < order[last["status"]]
    return event["steps_done"] <= last["steps_done"]
