"""The asyncio client's writes, timed without a task each: a stalled write still times out."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis.exceptions

from shared.redis_clients import async_client


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
