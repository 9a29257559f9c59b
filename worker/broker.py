"""The broker as both sides see it, and every detail of Celery's messages the service relies on:
the Celery configuration (JSON only, late acknowledgement, one job per worker process at a time),
the tasks' names, the Redis keys of kombu's transport, the queue message of a job (built here so
that the job store can push it in the script that records the job), and how a message names the
jobs it runs (read here in Python, and by the store's scripts in ``ENVELOPE_LUA``).
``tests/worker/test_broker.py`` compares all of it with what Celery and kombu themselves write,
so an upgrade that changes their format fails there. The API builds messages with its own
instance made here; the worker's instance lives in ``worker.celery_app``."""

import base64
import json
import uuid

from celery import Celery
from kombu.serialization import dumps

from worker.settings import Settings

QUEUE_KEY = "celery"  # the Redis list behind the Celery queue that workers consume
# kombu's Redis transport: messages a worker took and has not acknowledged (a hash by delivery
# tag, each entry [message, exchange, routing key]), and when it took them (a sorted set)
UNACKED_KEY, UNACKED_INDEX_KEY = "unacked", "unacked_index"

TASK_NAME = "spikeserve.run_job"
POINTS_TASK_NAME = "spikeserve.run_points"  # sweep points that run as the entries of one batch


def make_celery(settings: Settings) -> Celery:
    app = Celery("spikeserve", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        # JSON only: a pickle message could execute code on the worker.
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        # Job state lives in our own store; Celery's result backend is not used.
        task_ignore_result=True,
        # A job is acknowledged only after it finished; a worker that dies mid-job gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.celery_soft_time_limit_s,
        task_time_limit=settings.hard_time_limit_s,
        # Redis redelivers unacknowledged messages after this; it must outlast the longest job.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=QUEUE_KEY,
    )
    return app


def task_message(app: Celery, job_id: str) -> bytes:
    """The message that ``app.send_task(TASK_NAME, args=[job_id], task_id=job_id)`` pushes onto
    the Redis list ``QUEUE_KEY``, built without sending it, so that the job store can push it in
    the script that records the job: a job and its message are written together or not at all,
    in one round trip (sending through Celery took a second one and a third of a millisecond)."""
    return _message(app, job_id, TASK_NAME, [job_id])


def points_message(app: Celery, job_ids: list[str]) -> bytes:
    """The message of sweep points: one job's (``task_message``), or, for several, one task that
    runs them as the entries of one batch (``POINTS_TASK_NAME``, its task id the first point's)."""
    return task_message(app, job_ids[0]) if len(job_ids) == 1 else _message(app, job_ids[0], POINTS_TASK_NAME, [job_ids])


def _message(app: Celery, task_id: str, task_name: str, args: list) -> bytes:
    """Celery builds the task part (headers, properties, JSON body); the envelope around it is the
    one kombu's Redis transport writes (a test compares the two)."""
    task = app.amqp.create_task_message(task_id, task_name, args, reply_to=app.thread_oid, ignore_result=None)
    content_type, encoding, body = dumps(task.body, serializer="json")
    properties = {
        **task.properties,
        "delivery_mode": 2,  # persistent
        "delivery_info": {"exchange": "", "routing_key": QUEUE_KEY},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": encoding,
        "content-type": content_type,
        "headers": task.headers,
        "properties": properties,
    }
    return json.dumps(envelope).encode()


def job_ids_of(message: dict) -> list[str]:
    """The jobs a queue message runs: its task's first argument, a job id or a list of them
    (sweep points run as one batch); ValueError (or KeyError, TypeError) for any other message."""
    first = json.loads(base64.b64decode(message["body"]))[0][0]
    return [str(job_id) for job_id in (first if isinstance(first, list) else [first])]


def unacked_entry(raw: bytes) -> tuple[dict, str]:
    """An entry of ``UNACKED_KEY`` as kombu writes it: (the message, the queue it came from)."""
    message, _exchange, routing_key = json.loads(raw)
    return message, routing_key


# For the store's scripts: the task name and task id of a queue message (a job's id is its task
# id), or nil for anything else.
ENVELOPE_LUA = """
local function envelope_task(raw)
  local ok, message = pcall(cjson.decode, raw)
  if not ok or type(message) ~= 'table' or type(message.headers) ~= 'table' then return nil end
  return message.headers.task, message.headers.id
end
"""
