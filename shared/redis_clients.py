"""How every chatq process makes its Redis clients, synchronous and asyncio: one set of
options, so a setting fixed here holds for the gateway, the workers and the CLI alike."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection

# redis-py (6 and later) caps a client's connection pool at 100 and raises "Too many
# connections" past it; a worker running hundreds of jobs in threads, or a gateway holding
# hundreds of open streams, needs one connection each. Connections are opened on demand.
REDIS_MAX_CONNECTIONS = 10_000
MAX_BLOCK_MS = 2_000  # a blocking read re-checks its caller's deadline at least this often
SOCKET_TIMEOUT_S = 10.0  # well above MAX_BLOCK_MS: a blocked XREAD is not a dead server
CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_timeout": SOCKET_TIMEOUT_S,
    "max_connections": REDIS_MAX_CONNECTIONS,
}


def _unwrap_deprecation_checks() -> None:
    """redis-py wraps ``ConnectionPool.get_connection`` in a check for deprecated arguments
    that inspects its arguments on every command: 2-4% of a worker's and the gateway's CPU
    (py-spy). chatq never passes those arguments, so the pools call the function itself."""
    for module in (redis.connection, redis.asyncio.connection):
        for pool in vars(module).values():
            if isinstance(pool, type) and "get_connection" in vars(pool):
                inner = getattr(pool.get_connection, "__wrapped__", None)
                if inner is not None:
                    pool.get_connection = inner  # type: ignore[method-assign]


_unwrap_deprecation_checks()


def _time_writes_without_a_task() -> None:
    """redis-py's asyncio connections time each write with ``asyncio.wait_for``, which on
    Python 3.11 makes a task per command: 65 us of the gateway's CPU per command, a third of
    what sending one costs. The write is timed with ``asyncio.timeout`` instead, with the
    same outcome: a write that stalls past the socket timeout drops the connection and
    raises redis-py's ``TimeoutError``."""
    connection = redis.asyncio.connection.AbstractConnection
    send = connection.send_packed_command

    async def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        timeout = self.socket_timeout
        if not timeout:
            return await send(self, command, check_health)
        self.socket_timeout = None  # redis-py writes at once, untimed; timed here
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                await send(self, command, check_health)
        except TimeoutError:
            if not deadline.expired():
                raise
            # cut off mid-write, redis-py has dropped the connection
            raise redis.exceptions.TimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout

    connection.send_packed_command = send_packed_command  # type: ignore[method-assign]


if sys.version_info < (3, 12):  # from 3.12, wait_for is asyncio.timeout
    _time_writes_without_a_task()


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` (``Settings.effective_redis_url``); ``options`` override ours."""
    return redis.Redis.from_url(url, **{**CLIENT_OPTIONS, **options})


def async_client(url: str, **options: Any) -> redis.asyncio.Redis:
    """The asyncio client for ``url``, with the same options."""
    return redis.asyncio.Redis.from_url(url, **{**CLIENT_OPTIONS, **options})
