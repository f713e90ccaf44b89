"""How every chatq process makes its Redis clients, synchronous and asyncio: one set of
options, so a setting fixed here holds for the gateway, the workers and the CLI alike."""

from __future__ import annotations

import asyncio
import sys
import urllib.parse
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.connection
import redis.sentinel

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
    """A client for ``url`` (``Settings.effective_redis_url``); ``options`` override ours.
    A ``redis+sentinel://`` URL gives a client of the master its sentinels name, which
    follows a failover by itself."""
    if (target := SentinelTarget.parse(url)) is not None:
        return target.master(redis.sentinel.Sentinel, {**CLIENT_OPTIONS, **options})
    return redis.Redis.from_url(url, **{**CLIENT_OPTIONS, **options})


def async_client(url: str, **options: Any) -> redis.asyncio.Redis:
    """The asyncio client for ``url``, with the same options."""
    if (target := SentinelTarget.parse(url)) is not None:
        return target.master(redis.asyncio.sentinel.Sentinel, {**CLIENT_OPTIONS, **options})
    return redis.asyncio.Redis.from_url(url, **{**CLIENT_OPTIONS, **options})


SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_TIMEOUT_S = 1.0  # a sentinel that does not answer within this is skipped


@dataclass(frozen=True)
class SentinelTarget:
    """A Redis master found through Redis Sentinel, written as one URL:
    ``redis+sentinel://[[user]:password@]host:port[,host:port...]/master[/db]`` with
    ``?sentinel_password=...`` if the sentinels want one. The password is the master's."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelTarget | None:
        """The target of a ``redis+sentinel://`` URL; None for any other URL."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != SENTINEL_SCHEME:
            return None
        userinfo, _, hosts = parts.netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        path = [p for p in parts.path.split("/") if p]
        if not path or not hosts:
            raise ValueError(
                f"A Sentinel URL names its sentinels and master: "
                f"{SENTINEL_SCHEME}://host:port,host:port/master[/db], not {redact(url)!r}"
            )
        query = urllib.parse.parse_qs(parts.query)
        return cls(
            sentinels=sentinel_addresses(hosts),
            master_name=path[0],
            db=int(path[1]) if len(path) > 1 else 0,
            username=urllib.parse.unquote(username) or None,
            password=urllib.parse.unquote(password) or None,
            sentinel_password=(query.get("sentinel_password") or [None])[0],
        )

    def url(self) -> str:
        auth = ""
        if self.password is not None:
            user = urllib.parse.quote(self.username or "", safe="")
            auth = f"{user}:{urllib.parse.quote(self.password, safe='')}@"
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        query = ""
        if self.sentinel_password is not None:
            query = "?" + urllib.parse.urlencode({"sentinel_password": self.sentinel_password})
        return f"{SENTINEL_SCHEME}://{auth}{hosts}/{self.master_name}/{self.db}{query}"

    def master(self, sentinel_class: Any, options: dict[str, Any]) -> Any:
        """A client of the current master, by ``sentinel_class`` (sync or asyncio)."""
        sentinel_options = {
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
            "password": self.sentinel_password,
            "decode_responses": True,
        }
        sentinel = sentinel_class(list(self.sentinels), sentinel_kwargs=sentinel_options)
        return sentinel.master_for(
            self.master_name,
            db=self.db,
            username=self.username,
            password=self.password,
            **options,
        )

    def celery_broker(self) -> tuple[str, dict[str, Any]]:
        """kombu's form of this target: its broker URL and transport options."""
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        url = ";".join(f"sentinel://{auth}{host}:{port}/{self.db}" for host, port in self.sentinels)
        options: dict[str, Any] = {"master_name": self.master_name}
        if self.sentinel_password is not None:
            options["sentinel_kwargs"] = {"password": self.sentinel_password}
        return url, options


def sentinel_addresses(listed: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port,...`` as pairs; raises ValueError naming an entry that is not."""
    addresses = []
    for entry in (e.strip() for e in listed.split(",")):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"A sentinel is host:port, not {entry!r}")
        addresses.append((host, int(port)))
    return tuple(addresses)


def redact(url: str) -> str:
    """``url`` fit to show: its password and query left out."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
