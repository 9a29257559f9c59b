"""The broker's messages as Celery and kombu write them: a job's queue message is the one Celery
would send, and what a consumer leaves unacknowledged reads as the service expects."""

import json

import redis

from app.redis_server import RedisServer
from worker.broker import (
    POINTS_TASK_NAME,
    QUEUE_KEY,
    TASK_NAME,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    job_ids_of,
    make_celery,
    points_message,
    task_message,
    unacked_entry,
)
from worker.settings import Settings


def test_a_job_message_is_the_one_celery_would_send(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.delete(QUEUE_KEY)
    app = make_celery(Settings(redis_url=redis_server.url))
    app.send_task(TASK_NAME, args=["0123abcd"], task_id="0123abcd")
    (sent,) = client.lrange(QUEUE_KEY, 0, -1)
    client.delete(QUEUE_KEY)
    sent_message, built_message = json.loads(sent), json.loads(task_message(app, "0123abcd"))
    sent_tag = sent_message["properties"].pop("delivery_tag")
    built_tag = built_message["properties"].pop("delivery_tag")
    assert built_message == sent_message
    assert built_tag != sent_tag, "every message has its own delivery tag (kombu acknowledges by it)"


def test_the_message_names_the_task_and_carries_the_job_id_only() -> None:
    app = make_celery(Settings())
    message = json.loads(task_message(app, "feed"))
    assert message["headers"]["task"] == TASK_NAME and message["headers"]["id"] == "feed"
    assert message["content-type"] == "application/json", "JSON only: never pickle"
    assert message["properties"]["delivery_info"]["routing_key"] == QUEUE_KEY


def test_a_batch_of_points_is_one_message_of_the_points_task(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.delete(QUEUE_KEY)
    app = make_celery(Settings(redis_url=redis_server.url))
    app.send_task(POINTS_TASK_NAME, args=[["a1", "b2"]], task_id="a1")
    (sent,) = client.lrange(QUEUE_KEY, 0, -1)
    client.delete(QUEUE_KEY)
    sent_message, built_message = json.loads(sent), json.loads(points_message(app, ["a1", "b2"]))
    for message in (sent_message, built_message):
        message["properties"].pop("delivery_tag")
    assert built_message == sent_message
    assert json.loads(points_message(app, ["a1"]))["headers"]["task"] == TASK_NAME, "a point alone is a job's message"


def test_what_a_consumer_leaves_unacknowledged_is_read_as_kombu_writes_it(redis_server: RedisServer) -> None:
    """A message taken by a real kombu consumer and not acknowledged: its unacked entry is what
    ``unacked_entry`` reads, and its jobs what ``job_ids_of`` finds. A kombu upgrade that changes
    the envelope or the entry fails here (the store's script reads the envelope as ENVELOPE_LUA
    does, tested with the real queue in tests/worker/test_store.py)."""
    client = redis.Redis.from_url(redis_server.url)
    client.delete(QUEUE_KEY, UNACKED_KEY, UNACKED_INDEX_KEY)
    app = make_celery(Settings(redis_url=redis_server.url))
    app.send_task(POINTS_TASK_NAME, args=[["a1", "b2"]], task_id="a1")
    with app.connection() as connection:
        channel = connection.default_channel
        taken = channel.basic_get(QUEUE_KEY, no_ack=False)
        assert taken is not None
        (tag, raw), *_ = client.hgetall(UNACKED_KEY).items()
        assert tag.decode() == taken.delivery_tag and client.zscore(UNACKED_INDEX_KEY, tag) is not None
        message, routing_key = unacked_entry(raw)
        assert routing_key == QUEUE_KEY and job_ids_of(message) == ["a1", "b2"]
        channel.basic_reject(taken.delivery_tag, requeue=True)
    client.delete(QUEUE_KEY, UNACKED_KEY, UNACKED_INDEX_KEY)
    assert job_ids_of(json.loads(task_message(app, "feed"))) == ["feed"]
