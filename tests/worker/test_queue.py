"""The queue message a job is recorded with: the one Celery itself would send."""

import json

import redis

from app.redis_server import RedisServer
from worker.queue import POINTS_TASK_NAME, TASK_NAME, make_celery, points_message, task_message
from worker.settings import Settings
from worker.store import QUEUE_KEY


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
