"""A BRPOP that brings a message brings as many more as the prefetch leaves room for, oldest
first; chat messages taken so are held as any other. On a real Redis, kombu's own channel."""

from __future__ import annotations

import json
from collections.abc import Iterator

import chatq.workers.batched_pop  # the patch under test
import chatq.workers.chat_message_acks  # noqa: F401
import pytest
from chatq.shared.celery_config import TASK_CHAT
from kombu import Connection
from redis import Redis

QUEUE = "chatq.test.batched"


@pytest.fixture()
def connection(redis_server: str, redis_client: Redis) -> Iterator[Connection]:
    redis_client.delete(QUEUE)
    with Connection(redis_server) as connection:
        connection.default_channel.queue_declare(QUEUE)
        yield connection
    redis_client.delete(QUEUE)


def send(connection: Connection, count: int) -> None:
    channel = connection.default_channel
    for n in range(count):
        message = channel.prepare_message(json.dumps({"n": n}), headers={"task": TASK_CHAT})
        channel.basic_publish(message, exchange="", routing_key=QUEUE)


def consume(connection: Connection, prefetch: int) -> list[object]:
    """Starts consuming with ``prefetch`` and returns the list the messages arrive in."""
    channel = connection.default_channel
    channel.basic_qos(0, prefetch, False)
    taken: list[object] = []
    channel.basic_consume(QUEUE, no_ack=False, callback=taken.append, consumer_tag="test")
    return taken


def bodies(messages: list[object]) -> list[int]:
    return [json.loads(m.body)["n"] for m in messages]  # type: ignore[attr-defined]


def test_one_round_takes_as_many_as_the_prefetch_allows_oldest_first(connection, redis_client):
    send(connection, 10)
    taken = consume(connection, prefetch=4)
    connection.drain_events(timeout=2)
    assert bodies(taken) == [0, 1, 2, 3]
    assert redis_client.llen(QUEUE) == 6


def test_acked_messages_make_room_for_the_next_round(connection, redis_client):
    send(connection, 10)
    taken = consume(connection, prefetch=4)
    connection.drain_events(timeout=2)
    for message in taken:
        message.ack()  # type: ignore[attr-defined]
    connection.drain_events(timeout=2)
    assert bodies(taken) == list(range(8))
    assert redis_client.llen(QUEUE) == 2


def test_a_lone_message_is_taken_alone(connection, redis_client):
    send(connection, 1)
    taken = consume(connection, prefetch=4)
    connection.drain_events(timeout=2)
    assert bodies(taken) == [0]


def test_chat_messages_taken_together_go_back_at_shutdown(connection, redis_client):
    send(connection, 5)
    taken = consume(connection, prefetch=5)
    connection.drain_events(timeout=2)
    assert len(taken) == 5 and redis_client.llen(QUEUE) == 0
    connection.default_channel.qos.restore_unacked_once()
    assert redis_client.llen(QUEUE) == 5
