"""Chat messages are acknowledged in the worker's memory only, not in Redis.

kombu's Redis transport emulates acknowledgements: each message a worker takes is written to
its ``unacked`` hash and ``unacked_index`` zset (a transaction: MULTI, ZADD, HSET, EXEC), and
removed again on the ack (four more commands), so that messages of a dead worker come back
after the visibility timeout. A chat job needs none of that: its record keeps its payload and
``chatq.workers.recovery`` sends it again when its claim lapses, or when a sweep finds its message
nowhere, sooner than the visibility timeout would. So a ``chatq.chat`` message is tracked
only in the worker's memory: a clean shutdown or a rejection with requeue still pushes it
back from there. Other tasks (webhooks) keep kombu's emulation, whose two remaining steps
(take, ack) go as plain pipelines: their commands are independent, and the visibility sweep
only looks at messages taken long before.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from chatq.shared.celery_config import TASK_CHAT
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

QoS = kombu_redis.QoS
_append, _ack, _reject, _restore_by_tag = QoS.append, QoS.ack, QoS.reject, QoS.restore_by_tag


def _memory_only(qos: Any) -> set[str]:
    """The delivery tags of messages this QoS holds in memory only."""
    tags = qos.__dict__.get("_chatq_memory_only")
    if tags is None:
        tags = qos.__dict__.setdefault("_chatq_memory_only", set())
    return tags


def append(self: Any, message: Any, delivery_tag: str) -> None:
    if (message.headers or {}).get("task") == TASK_CHAT:
        _memory_only(self).add(delivery_tag)
        virtual.QoS.append(self, message, delivery_tag)
        return
    _append(self, message, delivery_tag)


def ack(self: Any, delivery_tag: str) -> None:
    tags = _memory_only(self)
    if delivery_tag in tags:
        tags.discard(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)
        return
    _ack(self, delivery_tag)


def reject(self: Any, delivery_tag: str, requeue: bool = False) -> None:
    tags = _memory_only(self)
    if delivery_tag in tags:
        if requeue:
            _push_back(self, delivery_tag, leftmost=True)
        tags.discard(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)
        return
    _reject(self, delivery_tag, requeue)


def restore_by_tag(self: Any, tag: str, client: Any = None, leftmost: bool = False) -> None:
    if tag in _memory_only(self):  # at shutdown: back to its queue from memory
        _push_back(self, tag, leftmost=leftmost, client=client)
        _memory_only(self).discard(tag)
        return
    _restore_by_tag(self, tag, client, leftmost)


def _push_back(self: Any, tag: str, *, leftmost: bool, client: Any = None) -> None:
    message = self._delivered.get(tag)
    if message is None:
        return
    delivery = message.delivery_info
    with self.channel.conn_or_acquire(client) as conn:
        pipe = conn.pipeline(transaction=False)
        self.channel._do_restore_message(
            message._raw, delivery["exchange"], delivery["routing_key"], pipe, leftmost
        )
        pipe.execute()


@contextmanager
def pipe_or_acquire(self: Any, pipe: Any = None, client: Any = None) -> Any:
    """kombu's, with a plain pipeline where it made a transaction of independent commands."""
    if pipe:
        yield pipe
    else:
        with self.channel.conn_or_acquire(client) as conn:
            yield conn.pipeline(transaction=False)


QoS.append = append  # type: ignore[method-assign]
QoS.ack = ack  # type: ignore[method-assign]
QoS.reject = reject  # type: ignore[method-assign]
QoS.restore_by_tag = restore_by_tag  # type: ignore[method-assign]
QoS.pipe_or_acquire = pipe_or_acquire  # type: ignore[method-assign]
