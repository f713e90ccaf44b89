"""The broker layer chatq owns: kombu's Redis transport, subclassed, and the chat message.

Celery is pointed at ``Transport`` (or ``SentinelTransport``) by ``broker_transport``
(``chatq.shared.celery_config``); nothing is patched in kombu itself, and nothing outside
this module touches a private kombu name. What the subclasses change, and why:

- **Batched pop.** kombu takes one message per BRPOP: a round trip, and the loop's socket
  registered again, for every message (about 90 messages waited in Redis at 300 jobs/s in
  ``chatq bench --scenario gateway``). A BRPOP that brings a message is followed, on the same
  idle connection, by one ``RPOP key count`` for as many more as the prefetch leaves room for.
- **Chat messages acknowledged in memory.** kombu writes each taken message to its
  ``unacked`` hash and zset (MULTI, ZADD, HSET, EXEC) and removes it on the ack. A chat job's
  record keeps its payload and ``chatq.workers.recovery`` sends it again when its claim
  lapses, so a ``chatq.chat`` message is held in the worker's memory only; a clean shutdown or
  a requeue pushes it back from there. Other tasks keep kombu's emulation, whose take and ack
  go as plain pipelines (their commands are independent).
- **Reconnects.** A channel used after its connection closed (Celery giving back unacked
  messages, a finished task's ack) raised ``AttributeError`` and the worker exited
  (celery/kombu#582, #970); here it raises a connection error, and Celery reconnects.
- **One synchronous client per channel and pool**, not a ``redis.Redis`` built per message
  (about a tenth of a worker's CPU per job, py-spy).
- **Fast decoding** of the envelope and the JSON body by orjson, for this transport's
  messages only (kombu's object hook, called for every object, was 3.5% of a worker's CPU).
- **The hand-built chat message** (``chat_message``): the envelope kombu keeps on a queue's
  list, written by ``create_job.lua`` in the step that records the job (Celery's
  ``send_task`` was a quarter of the gateway's CPU); ``MessageFinder`` looks for it.

The overrides are checked against the kombu versions chatq is tested with (``KOMBU_TESTED``);
``tests/unit/shared/test_broker.py`` fails when an overridden method changes upstream.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from queue import Empty
from typing import Any
from urllib.parse import urlparse

import celery.app.amqp
import kombu
import orjson
from chatq.shared import keys
from chatq.shared.celery_config import TASK_CHAT, chat_argsrepr
from chatq.shared.scripts import lua
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads as kombu_loads
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

# The kombu releases this module is tested with: >= first, < second (pyproject's bound).
KOMBU_TESTED = ((5, 4), (5, 8))
MAX_BATCH = 64  # at most this many messages taken by one RPOP after a BRPOP
_LONG_DIGITS = re.compile(rb"\d{19}")  # an integer that may not fit in 64 bits
SCAN_CHUNK = 2000  # list items one script call reads: keeps each call short for Redis


def _check_kombu_version(version: str = kombu.__version__) -> None:
    found = tuple(int(part) for part in version.split(".")[:2])
    low, high = KOMBU_TESTED
    if not low <= found < high:
        raise ImportError(
            f"chatq's broker layer is tested with kombu >={low[0]}.{low[1]},<{high[0]}.{high[1]}"
            f" and found kombu {version}: pip install 'kombu>={low[0]}.{low[1]},"
            f"<{high[0]}.{high[1]}'"
        )


_check_kombu_version()


def fast_loads(data: Any) -> Any:
    """JSON by orjson where the text has no ``__type__`` marker (kombu's encoding of dates,
    UUIDs and decimals, which its object hook turns back into objects) and no run of digits
    that may pass 64 bits (orjson reads such an integer as a float); else kombu's own."""
    raw = data.tobytes() if isinstance(data, memoryview) else data
    if isinstance(raw, str):
        raw = raw.encode()
    if b'"__type__"' not in raw and _LONG_DIGITS.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # kombu's own way, and its error
    return kombu_loads(bytes_to_str(raw))


class Message(kombu_redis.Channel.Message):
    """A message of chatq's channels: its JSON body decoded by ``fast_loads``."""

    def _decode(self) -> Any:
        accepted = self.accept is None or self.content_type in self.accept
        if self.content_type == "application/json" and accepted:
            return fast_loads(self.body)
        return super()._decode()


class QoS(kombu_redis.QoS):
    """kombu's QoS, with ``chatq.chat`` messages acknowledged in memory only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._memory_only: set[str] = set()  # delivery tags held in memory only

    def append(self, message: Any, delivery_tag: str) -> None:
        if (message.headers or {}).get("task") == TASK_CHAT:
            self._memory_only.add(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if delivery_tag in self._memory_only:
            self._memory_only.discard(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
            return
        super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if delivery_tag in self._memory_only:
            if requeue:
                self._push_back(delivery_tag, leftmost=True)
            self._memory_only.discard(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
            return
        super().reject(delivery_tag, requeue)

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        if tag in self._memory_only:  # at shutdown: back to its queue from memory
            self._push_back(tag, leftmost=leftmost, client=client)
            self._memory_only.discard(tag)
            return
        super().restore_by_tag(tag, client, leftmost)

    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        """kombu's, with a plain pipeline where it made a transaction of independent
        commands."""
        if pipe:
            yield pipe
        else:
            with self.channel.conn_or_acquire(client) as conn:
                yield conn.pipeline(transaction=False)

    def _push_back(self, tag: str, *, leftmost: bool, client: Any = None) -> None:
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


class _ChannelChanges:
    """What chatq changes in kombu's Redis channel (and its Sentinel form)."""

    QoS = QoS
    Message = Message

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection of this channel is closed")
        return super()._connparams(asynchronous)

    def _create_client(self, asynchronous: bool = False) -> Any:
        """One synchronous client per channel and pool; a client is safe to share between
        threads (it takes a connection from the pool for each command)."""
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        cached = getattr(self, "_chatq_client", None)
        if cached is None or cached[0] is not pool:  # a new pool after a reconnect
            cached = (pool, super()._create_client())
            self._chatq_client = cached
        return cached[1]

    def _brpop_read(self, **options: Any) -> bool:
        """kombu's ``_brpop_read``, and then one RPOP for more from the same list."""
        client = self.client
        connection = client.connection
        try:
            reply = self._read_or_disconnect(
                connection, lambda: client.parse_response(connection, "BRPOP", **options)
            )
            if not reply:
                raise Empty()
            key, item = reply
            queue = bytes_to_str(key).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            self.connection._deliver(fast_loads(item), queue)
            room = self._room()
            if room > 0 and not self.global_keyprefix:
                more = self._read_or_disconnect(
                    connection, lambda: client.execute_command("RPOP", key, room)
                )
                for item in more or ():
                    self.connection._deliver(fast_loads(item), queue)
            return True
        finally:
            self._in_poll = None
            flush_reauth = getattr(self, "_flush_brpop_reauth", None)  # kombu >= 5.7
            if flush_reauth is not None:
                flush_reauth()  # the connection is idle: as kombu, re-auth now if due

    def _read_or_disconnect(self, connection: Any, read: Any) -> Any:
        try:
            return read()
        except self.connection_errors:
            connection.disconnect()  # the next round reconnects
            raise

    def _room(self) -> int:
        """How many more messages the prefetch limit lets this channel take now."""
        room = self.qos.can_consume_max_estimate()
        return MAX_BATCH if room is None else min(MAX_BATCH, room)


class Channel(_ChannelChanges, kombu_redis.Channel):
    pass


class SentinelChannel(_ChannelChanges, kombu_redis.SentinelChannel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


# The URL scheme each of chatq's transports serves, by the name Celery is given for it.
_SCHEMES = {
    f"{__name__}:SentinelTransport": "sentinel",
    f"{__name__}:Transport": "redis",
}


class Connection(kombu.Connection):
    """kombu's connection, whose URI gives chatq's transports the schemes they serve
    (``redis://``, ``sentinel://``), not their class names: tools that read it, such as
    Flower's broker page, pick their client by that scheme."""

    def as_uri(self, *args: Any, **kwargs: Any) -> str:
        uri = super().as_uri(*args, **kwargs)
        for name, scheme in _SCHEMES.items():
            if uri.startswith(f"{name}://"):
                return scheme + uri[len(name) :]
        return uri


class AMQP(celery.app.amqp.AMQP):
    """Celery's messaging layer with ``Connection`` above: Celery apps take it as
    ``amqp="chatq.shared.broker:AMQP"``."""

    Connection = Connection


_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"
_REPLY_TO = str(uuid.uuid4())  # unused (results live in the job record), as Celery sets one
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def chat_message(job: dict[str, Any], queue: str) -> str:
    """The JSON kombu would LPUSH onto ``queue`` for a ``chatq.chat`` task of ``job`` (the
    ``ChatJob`` as JSON), Celery's task protocol 2: its task id is the job id, and it keeps no
    result. Any Celery client may still send ``chatq.chat`` tasks."""
    job_id = job["id"]
    body = orjson.dumps([[job], {}, _EMBED])
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": TASK_CHAT,
            "id": job_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": job_id,
            "parent_id": None,
            "argsrepr": chat_argsrepr(job),
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": True,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": job_id,
            "reply_to": _REPLY_TO,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": secrets.token_hex(16),
        },
    }
    return orjson.dumps(envelope).decode()


EVENT_EXCHANGE = "celeryev"  # Celery's event exchange (event_exchange), a fanout on PUB/SUB
_EVENT_TYPES = {"done": "task-succeeded", "failed": "task-failed", "cancelled": "task-revoked"}


def broker_db(url: str) -> int:
    """The Redis database a broker URL names (``redis://host/3``: 3), as kombu reads it."""
    from chatq.shared.redis_clients import SentinelTarget

    if (sentinel := SentinelTarget.parse(url)) is not None:
        return sentinel.db
    path = urlparse(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def task_end_event(db: int, fields: dict[str, Any]) -> tuple[str, str]:
    """A chat task's end as one Celery task event, and the PUB/SUB channel kombu's Redis
    transport carries Celery's events on: what Flower needs of a task (name, arguments,
    worker, received, started and end times, runtime) in the single event its end script
    publishes, instead of three events sent by the worker. ``fields`` holds ``status``
    (done, failed, cancelled), ``uuid``, ``hostname`` and the rest of the event's fields."""
    status = fields.pop("status")
    event_type = _EVENT_TYPES[status]
    routing_key = event_type.replace("-", ".")
    event = {"type": event_type, "utcoffset": 0, "pid": 0, "clock": 0, **fields}
    envelope = {
        "body": orjson.dumps(event).decode(),  # no body_encoding: the JSON text as it is
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": fields.get("hostname")},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": EVENT_EXCHANGE, "routing_key": routing_key},
            "priority": 0,
            "delivery_tag": secrets.token_hex(16),
        },
    }
    channel = f"/{db}.{EVENT_EXCHANGE}/{routing_key}"
    return channel, orjson.dumps(envelope).decode()


class MessageFinder:
    """Which jobs have a chat message waiting in a queue's lists (``find_messages.lua``)."""

    def __init__(self, redis: Redis):
        self._find = redis.register_script(lua("chatq.shared", "find_messages.lua"))

    def find(self, job_ids: Iterable[str], queues: Iterable[str]) -> set[str]:
        """Which of the jobs have a message in one of the queues (any priority step)."""
        wanted = set(job_ids)
        found: set[str] = set()
        for queue in sorted(queues):
            for name in keys.queue_lists(queue):
                start = 0
                while wanted - found:
                    scanned, hits = self._scan(name, start, wanted - found)
                    found.update(hits)
                    if scanned < SCAN_CHUNK:
                        break
                    start += SCAN_CHUNK
        return found

    def _scan(self, name: str, start: int, wanted: set[str]) -> tuple[int, list[str]]:
        reply: list[Any] = self._find(
            keys=[name], args=[start, start + SCAN_CHUNK - 1, *sorted(wanted)]
        )
        return int(reply[0]), [bytes_to_str(hit) for hit in reply[1:]]
