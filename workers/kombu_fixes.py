"""Fixes to kombu's Redis transport: a bug that kills workers when Redis restarts, a client
built anew for every message (``_shared_sync_client``), and slow JSON decoding
(``_fast_loads``).

After the broker connection drops, a closed channel may still be used: Celery's close gives
back the channel's unacknowledged messages, and tasks that finish acknowledge their messages
on it. Both reach ``Channel._connparams`` with the connection already released, which raises
``AttributeError: 'NoneType' object has no attribute 'hostname'`` (or ``'client'``). Celery
treats that as unrecoverable and the worker exits instead of reconnecting (kombu 5.x; the
same crash as celery/kombu#582 and #970). Raised as the connection error it is, Celery logs
it and reconnects; the messages stay in Redis's unacked set until the visibility-timeout
sweep restores them, and the job claims keep any job from running twice.
"""

from __future__ import annotations

from typing import Any

import orjson
from kombu import serialization as kombu_serialization
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json
from redis.exceptions import ConnectionError as RedisConnectionError

_connparams = kombu_redis.Channel._connparams


def _connparams_or_connection_error(self: kombu_redis.Channel, *args: Any, **kw: Any) -> Any:
    if self.connection is None or self.connection.client is None:
        raise RedisConnectionError("the broker connection of this channel is closed")
    return _connparams(self, *args, **kw)


kombu_redis.Channel._connparams = _connparams_or_connection_error  # type: ignore[method-assign]


_create_client = kombu_redis.Channel._create_client


def _shared_sync_client(self: kombu_redis.Channel, asynchronous: bool = False) -> Any:
    """One synchronous client per channel and pool, not a new one for every acknowledgement
    and every message taken: kombu builds a ``redis.Redis`` each time, copying its response
    callback tables, about a tenth of a worker's CPU per job (py-spy). A client is safe to
    share between threads; it takes a connection from the pool for each command."""
    if asynchronous:
        return _create_client(self, asynchronous=True)
    pool = self.pool
    cached = getattr(self, "_chatq_client", None)
    if cached is None or cached[0] is not pool:  # a new pool after a reconnect: a new client
        cached = (pool, _create_client(self))
        self._chatq_client = cached
    return cached[1]


kombu_redis.Channel._create_client = _shared_sync_client  # type: ignore[method-assign]


_kombu_loads = kombu_json.loads


def _fast_loads(s: Any, *args: Any, **kwargs: Any) -> Any:
    """kombu's JSON decoding, by orjson where the text has no ``__type__`` marker (kombu's
    encoding of dates, UUIDs and decimals, which its object hook turns back into objects):
    the hook, called for every object, made decoding a message 3.5% of a worker's CPU."""
    data = s.tobytes() if isinstance(s, memoryview) else s
    marker = b'"__type__"' if isinstance(data, (bytes, bytearray)) else '"__type__"'
    if marker not in data:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # what orjson does not take (integers past 64 bits): kombu's own way
    return _kombu_loads(s, *args, **kwargs)


kombu_redis.loads = _fast_loads  # the envelope of a message taken off a queue
kombu_serialization.registry.register(  # a message's body
    "json",
    kombu_json.dumps,
    _fast_loads,
    content_type="application/json",
    content_encoding="utf-8",
)
