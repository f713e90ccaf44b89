"""Concurrent commands on one multiplexed connection, against a real Redis: replies reach
their own callers, error replies stay with theirs, scripts load themselves, and a connection
that is lost or abandoned mid-reply gives way to a fresh one; for coroutines and threads."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from chatq.shared.multiplexed import Multiplexer, ThreadMultiplexer
from chatq.shared.redis_clients import async_client, sync_client
from chatq.shared.scripts import ScriptCall
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tests.support.waiting import eventually, eventually_async

ECHO = "return {KEYS[1], ARGV[1]}"


def run(url: str, test) -> None:
    async def main() -> None:
        client = async_client(url)
        lines = Multiplexer(client)
        try:
            await test(lines, client)
        finally:
            await lines.aclose()
            await client.aclose()

    asyncio.run(main())


def clients(client) -> int:
    return len([c for c in client.connection_pool._in_use_connections])


def test_concurrent_commands_get_their_own_replies_on_one_connection(redis_server):
    async def test(lines: Multiplexer, client) -> None:
        replies = await asyncio.gather(*(lines.execute("ECHO", f"n{i}") for i in range(500)))
        assert replies == [f"n{i}" for i in range(500)]
        assert clients(client) == 1

    run(redis_server, test)


def test_an_error_reply_raises_for_its_caller_only(redis_server):
    async def test(lines: Multiplexer, client) -> None:
        await lines.execute("SET", "mx:text", "a")
        ok, failed, after = await asyncio.gather(
            lines.execute("GET", "mx:text"),
            lines.execute("INCR", "mx:text"),
            lines.execute("ECHO", "after"),
            return_exceptions=True,
        )
        assert (ok, after) == ("a", "after")
        assert isinstance(failed, ResponseError)

    run(redis_server, test)


def test_a_script_redis_does_not_have_is_loaded_and_run(redis_server):
    async def test(lines: Multiplexer, client) -> None:
        await lines.execute("SCRIPT", "FLUSH")
        call = ScriptCall(ECHO, ["mx:key"], ["arg"])
        assert await asyncio.gather(lines.script(call), lines.script(call)) == [
            ["mx:key", "arg"],
            ["mx:key", "arg"],
        ]

    run(redis_server, test)


def test_a_killed_connection_fails_its_callers_and_the_next_command_reconnects(redis_server):
    async def test(lines: Multiplexer, client) -> None:
        name = await lines.execute("CLIENT", "ID")
        blocked = asyncio.ensure_future(lines.execute("BLPOP", "mx:never", 5))

        async def in_blpop() -> bool | None:
            return on_blpop(await client.client_list(), name)

        await eventually_async(in_blpop, timeout=5, every=0.02)
        await client.execute_command("CLIENT", "KILL", "ID", name)
        with pytest.raises(RedisConnectionError):
            await blocked
        assert await lines.execute("CLIENT", "ID") != name

    run(redis_server, test)


def test_a_caller_that_gives_up_moves_new_commands_to_a_fresh_connection(redis_server):
    async def test(lines: Multiplexer, client) -> None:
        first = await lines.execute("CLIENT", "ID")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await lines.execute("BLPOP", "mx:slow", 1)  # as a partitioned Redis would
        second = await lines.execute("CLIENT", "ID")
        assert second != first

        async def first_closed() -> set[int] | None:
            """The connections listed, once the abandoned one has drained its reply (the
            BLPOP's, in 1 s) and closed."""
            listed = {int(c["id"]) for c in await client.client_list()}
            return listed if first not in listed else None

        assert second in await eventually_async(first_closed, timeout=10, every=0.05)

    run(redis_server, test)


def test_threads_get_their_own_replies_in_groups_on_one_connection(redis_server):
    client = sync_client(redis_server)
    lines = ThreadMultiplexer(client)
    try:
        with ThreadPoolExecutor(32) as pool:
            replies = list(pool.map(lambda i: lines.execute("ECHO", f"n{i}"), range(2000)))
        assert replies == [f"n{i}" for i in range(2000)]
        assert len(client.connection_pool._in_use_connections) == 1
        with ThreadPoolExecutor(8) as pool:  # a nil reply, an error reply, a script
            call = ScriptCall(ECHO, ["mx:key"], ["arg"])
            lines.execute("SCRIPT", "FLUSH")
            got = list(pool.map(lambda _: lines.script(call), range(50)))
            assert got == [["mx:key", "arg"]] * 50
            assert lines.execute("GET", "mx:missing") is None
            lines.execute("SET", "mx:text", "a")
            with pytest.raises(ResponseError):
                lines.execute("INCR", "mx:text")
    finally:
        lines.close()
        client.close()


def test_a_killed_connection_fails_the_threads_waiting_and_the_next_command_reconnects(
    redis_server,
):
    client = sync_client(redis_server)
    lines = ThreadMultiplexer(client)
    try:
        name = lines.execute("CLIENT", "ID")
        with ThreadPoolExecutor(4) as pool:
            blocked = pool.submit(lines.execute, "BLPOP", "mx:never", 5)
            behind = [pool.submit(lines.execute, "ECHO", "x") for _ in range(3)]
            eventually(lambda: on_blpop(client.client_list(), name), timeout=5, every=0.02)
            client.execute_command("CLIENT", "KILL", "ID", name)
            with pytest.raises(RedisConnectionError):
                blocked.result()
            outcomes = [f.exception() or f.result() for f in behind]
        assert all(o == "x" or isinstance(o, RedisConnectionError) for o in outcomes)
        assert lines.execute("CLIENT", "ID") != name
    finally:
        lines.close()
        client.close()


def on_blpop(listed: list[dict], name: int) -> bool | None:
    """Whether connection ``name`` waits in its BLPOP, by what CLIENT LIST ``listed``."""
    return any(c["id"] == str(name) and c["cmd"] == "blpop" for c in listed) or None
