"""Server-Sent Events for one job: its status and progress as they change, ending with its final state."""

import asyncio
import json
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from app.store import FINAL_STATES, JobStore, events_channel

POLL_S = 1.0  # also re-read the record this often: a missed message (Redis restart) must not stall a stream


async def job_events(store: JobStore, client: aioredis.Redis, job_id: str) -> AsyncIterator[dict[str, str]]:
    pubsub = client.pubsub()
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
            job = await asyncio.to_thread(store.get, job_id)
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


def _not_newer(event: dict, last: dict) -> bool:
    """Events arrive from two sources (messages and re-reads); keep them in order, without repeats."""
    order = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}
    if order[event["status"]] != order[last["status"]]:
        return order[event["status"]] < order[last["status"]]
    return event["steps_done"] <= last["steps_done"]
