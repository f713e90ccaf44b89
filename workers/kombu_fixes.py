"""A workaround for a kombu bug that kills workers when Redis restarts.

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

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

_connparams = kombu_redis.Channel._connparams


def _connparams_or_connection_error(self: kombu_redis.Channel, *args: Any, **kw: Any) -> Any:
    if self.connection is None or self.connection.client is None:
        raise RedisConnectionError("the broker connection of this channel is closed")
    return _connparams(self, *args, **kw)


kombu_redis.Channel._connparams = _connparams_or_connection_error  # type: ignore[method-assign]
