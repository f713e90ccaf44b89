"""The Redis client factory: writes timed without a task each (a stalled write still times
out), and Redis behind Sentinel as one URL."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis.exceptions
from chatq.shared.celery_config import celery_config
from chatq.shared.redis_clients import SentinelTarget, async_client, redact
from chatq.shared.settings import Settings


def test_a_write_to_a_server_that_stopped_reading_times_out():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        async def stalled_write() -> float:
            # RESP2 and no driver info: the client sends nothing before the command
            url = f"redis://127.0.0.1:{port}"
            client = async_client(url, socket_timeout=0.5, protocol=2, driver_info=None)
            started = time.monotonic()
            try:
                with pytest.raises(redis.exceptions.TimeoutError, match="writing"):
                    await client.set("k", b"x" * 50_000_000)  # far past the socket buffers
            finally:
                await client.aclose()
            return time.monotonic() - started

        assert asyncio.run(stalled_write()) < 5


def test_the_timeout_is_restored_after_each_write():
    async def check() -> None:
        client = async_client("redis://127.0.0.1:1", socket_timeout=0.5)
        connection = client.connection_pool.make_connection()
        with pytest.raises(redis.exceptions.ConnectionError):
            await connection.send_packed_command(b"PING\r\n")
        assert connection.socket_timeout == 0.5
        await client.aclose()

    asyncio.run(check())


def test_a_sentinel_url_names_the_sentinels_master_and_db():
    url = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380/jobs/2?sentinel_password=pw"
    target = SentinelTarget.parse(url)
    assert target == SentinelTarget(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380)),
        master_name="jobs",
        db=2,
        password="s3cret",
        sentinel_password="pw",
    )
    assert SentinelTarget.parse(target.url()) == target
    broker, options = target.celery_broker()
    assert broker == "sentinel://:s3cret@10.0.0.1:26379/2;sentinel://:s3cret@10.0.0.2:26380/2"
    assert options == {"master_name": "jobs", "sentinel_kwargs": {"password": "pw"}}
    assert SentinelTarget.parse("redis://127.0.0.1:6379/0") is None


def test_a_sentinel_url_without_a_master_says_what_to_write():
    with pytest.raises(ValueError, match="host:port,host:port/master"):
        SentinelTarget.parse("redis+sentinel://10.0.0.1:26379")
    with pytest.raises(ValueError, match="host:port, not 'nohost'"):
        SentinelTarget.parse("redis+sentinel://nohost/jobs")


def test_settings_build_the_sentinel_url_and_passwords_stay_out_of_sight():
    settings = Settings(
        _env_file=None,
        redis_sentinels="10.0.0.1:26379, 10.0.0.2:26379",
        redis_master="jobs",
        redis_password="s3cret",
    )
    target = SentinelTarget.parse(settings.effective_redis_url)
    assert target is not None and target.sentinels[1] == ("10.0.0.2", 26379)
    assert target.password == "s3cret"
    assert "s3cret" not in redact(settings.effective_redis_url)
    config = celery_config(settings)
    assert config["broker_url"].startswith("sentinel://")
    assert config["broker_transport_options"]["master_name"] == "jobs"
    with pytest.raises(ValueError, match="host:port"):
        Settings(_env_file=None, redis_sentinels="10.0.0.1")
