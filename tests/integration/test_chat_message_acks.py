"""Chat messages are held in a worker's memory, not in kombu's unacked hash; other tasks
keep kombu's acknowledgement emulation. On a real Redis, with kombu's own channel."""

from __future__ import annotations

from collections.abc import Iterator

import chatq.workers.chat_message_acks  # noqa: F401  (the patch under test)
import pytest
from chatq.shared import keys
from chatq.shared.celery_config import TASK_CHAT, TASK_WEBHOOK
from kombu import Connection
from redis import Redis

QUEUE = "chatq.test.acks"


@pytest.fixture()
def channel(redis_server: str, redis_client: Redis) -> Iterator[object]:
    redis_client.delete(QUEUE, keys.KOMBU_UNACKED, keys.KOMBU_UNACKED_INDEX)
    with Connection(redis_server) as connection:
        channel = connection.default_channel
        channel.queue_declare(QUEUE)
        yield channel
    redis_client.delete(QUEUE, keys.KOMBU_UNACKED, keys.KOMBU_UNACKED_INDEX)


def send(channel, task: str) -> None:
    message = channel.prepare_message('{"x": 1}', headers={"task": task, "id": task})
    channel.basic_publish(message, exchange="", routing_key=QUEUE)


def test_a_chat_message_taken_is_not_written_to_the_unacked_hash(channel, redis_client):
    send(channel, TASK_CHAT)
    message = channel.basic_get(QUEUE, no_ack=False)
    assert message is not None and redis_client.hlen(keys.KOMBU_UNACKED) == 0
    message.ack()
    assert redis_client.llen(QUEUE) == 0 and redis_client.zcard(keys.KOMBU_UNACKED_INDEX) == 0


def test_a_chat_message_held_at_shutdown_goes_back_to_its_queue(channel, redis_client):
    send(channel, TASK_CHAT)
    assert channel.basic_get(QUEUE, no_ack=False) is not None
    assert redis_client.llen(QUEUE) == 0
    channel.qos.restore_unacked_once()
    assert redis_client.llen(QUEUE) == 1


def test_other_tasks_keep_kombus_acknowledgement_emulation(channel, redis_client):
    send(channel, TASK_WEBHOOK)
    message = channel.basic_get(QUEUE, no_ack=False)
    assert redis_client.hlen(keys.KOMBU_UNACKED) == 1
    message.ack()
    assert redis_client.hlen(keys.KOMBU_UNACKED) == 0
