"""chatq's broker layer (chatq.shared.broker) on a real Redis, through a kombu connection to
its transport: the batched pop, chat messages acknowledged in memory, the hand-built chat
message, and the fast decoding."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from chatq.shared import keys
from chatq.shared.broker import chat_message
from chatq.shared.celery_config import BROKER_TRANSPORT, TASK_CHAT, TASK_WEBHOOK
from kombu import Connection
from kombu.utils import json as kombu_json
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

QUEUE = "chatq.test.broker"


@pytest.fixture()
def connection(redis_server: str, redis_client: Redis) -> Iterator[Connection]:
    redis_client.delete(QUEUE, keys.KOMBU_UNACKED, keys.KOMBU_UNACKED_INDEX)
    with Connection(redis_server, transport=BROKER_TRANSPORT) as connection:
        connection.default_channel.queue_declare(QUEUE)
        yield connection
    redis_client.delete(QUEUE, keys.KOMBU_UNACKED, keys.KOMBU_UNACKED_INDEX)


def send(connection: Connection, count: int) -> None:
    for n in range(count):
        publish(connection, TASK_CHAT, json.dumps({"n": n}))


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


def publish(connection: Connection, task: str, body: str = '{"x": 1}') -> None:
    channel = connection.default_channel
    message = channel.prepare_message(
        body,
        content_type="application/json",
        content_encoding="utf-8",
        headers={"task": task, "id": task},
    )
    channel.basic_publish(message, exchange="", routing_key=QUEUE)


def test_a_chat_message_taken_is_not_written_to_the_unacked_hash(connection, redis_client):
    publish(connection, TASK_CHAT)
    message = connection.default_channel.basic_get(QUEUE, no_ack=False)
    assert message is not None and redis_client.hlen(keys.KOMBU_UNACKED) == 0
    message.ack()
    assert redis_client.llen(QUEUE) == 0 and redis_client.zcard(keys.KOMBU_UNACKED_INDEX) == 0


def test_a_chat_message_held_at_shutdown_goes_back_to_its_queue(connection, redis_client):
    publish(connection, TASK_CHAT)
    channel = connection.default_channel
    assert channel.basic_get(QUEUE, no_ack=False) is not None
    assert redis_client.llen(QUEUE) == 0
    channel.qos.restore_unacked_once()
    assert redis_client.llen(QUEUE) == 1


def test_a_rejected_chat_message_goes_back_to_its_queue(connection, redis_client):
    publish(connection, TASK_CHAT)
    message = connection.default_channel.basic_get(QUEUE, no_ack=False)
    message.reject(requeue=True)
    assert redis_client.llen(QUEUE) == 1 and redis_client.hlen(keys.KOMBU_UNACKED) == 0


def test_other_tasks_keep_kombus_acknowledgement_emulation(connection, redis_client):
    publish(connection, TASK_WEBHOOK)
    message = connection.default_channel.basic_get(QUEUE, no_ack=False)
    assert redis_client.hlen(keys.KOMBU_UNACKED) == 1
    message.ack()
    assert redis_client.hlen(keys.KOMBU_UNACKED) == 0


def test_the_hand_built_chat_message_reads_as_celerys_own(connection, redis_client):
    job = {"id": "job-1", "request": {"model": "m", "messages": [{"role": "user"}]}}
    redis_client.lpush(QUEUE, chat_message(job, QUEUE))
    message = connection.default_channel.basic_get(QUEUE, no_ack=False)
    assert message.headers["task"] == TASK_CHAT and message.headers["id"] == "job-1"
    args, kwargs, _embed = message.decode()
    assert args == [job] and kwargs == {}
    assert message.delivery_info["routing_key"] == QUEUE


def test_kombus_typed_json_still_decodes_to_objects(connection):
    sent = {"at": uuid.UUID("12345678-1234-5678-1234-567812345678"), "n": 2**70}
    publish(connection, TASK_WEBHOOK, kombu_json.dumps(sent))
    message = connection.default_channel.basic_get(QUEUE, no_ack=True)
    assert message.decode() == sent


def test_a_channel_whose_connection_closed_raises_a_connection_error(redis_server):
    connection = Connection(redis_server, transport=BROKER_TRANSPORT)
    channel = connection.default_channel
    connection.release()
    with pytest.raises(RedisConnectionError):
        channel._connparams()
