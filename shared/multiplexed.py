"""Concurrent callers' Redis commands on one connection, sent in groups: Redis reads a
group in one read and answers it in one write, where a command per round trip costs it two
system calls and a wakeup (a job's three scripts: 195 us of Redis CPU one at a time, 90 us in
groups of ten). A caller pays a packed write and a wait, not a connection pool's checkout,
health check and release.

- ``Multiplexer`` (asyncio), the way ioredis auto-pipelines: the commands of one turn of the
  event loop are written together, and one reader takes their replies in order.
- ``ThreadMultiplexer`` (threads), a group commit: the thread whose command finds none in
  flight writes every command waiting, reads their replies and hands them out, then passes
  the lead to a thread whose command came meanwhile.

The connection comes from the client's own pool, so a Sentinel master, TLS and
authentication are as the client has them. Only commands that answer at once belong here: a
blocking read would hold up every reply behind it.
"""

from __future__ import annotations

import _thread
import asyncio
import hashlib
import os
import threading
from collections import deque
from functools import cache
from typing import Any

import redis
import redis.asyncio
from chatq.shared.scripts import ScriptCall
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


@cache
def script_sha(source: str) -> str:
    """The SHA1 Redis names a script by (``EVALSHA``)."""
    return hashlib.sha1(source.encode()).hexdigest()


def _evalsha(call: ScriptCall) -> tuple[Any, ...]:
    return ("EVALSHA", script_sha(call.source), len(call.keys), *call.keys, *call.args)


class _Line:
    """One connection, the replies it owes (oldest first) and what it has yet to write."""

    def __init__(self, connection: Any):
        self.connection = connection
        self.owed: deque[asyncio.Future[Any]] = deque()
        self.unwritten: list[bytes] = []
        self.reader: asyncio.Task[None] | None = None
        self.retired = False  # takes no new commands; closed once it owes nothing
        self.closed = False

    def write(self) -> None:
        if self.connection.is_connected and self.unwritten:
            self.connection._writer.writelines(self.unwritten)
        self.unwritten = []

    def fail(self, error: BaseException) -> None:
        while self.owed:
            future = self.owed.popleft()
            if not future.done():
                future.set_exception(error)


class Multiplexer:
    """Sends commands for any number of coroutines on one connection of ``redis``'s pool."""

    def __init__(self, redis: redis.asyncio.Redis):
        self.redis = redis
        self._line: _Line | None = None
        self._opening: asyncio.Task[_Line] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def execute(self, *args: Any) -> Any:
        """Sends one command; its reply (a Redis error reply raises, as redis-py's does)."""
        line = await self._current_line()
        while line.retired:  # lost while this caller waited for it to open
            line = await self._current_line()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not line.unwritten:
            asyncio.get_running_loop().call_soon(self._flush, line)
        line.unwritten.extend(line.connection.pack_command(*args))
        line.owed.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            # its reply will still come, in its turn; until then the line may be stuck (a
            # partition), so new commands go on a fresh one
            self._retire(line)
            raise

    async def script(self, call: ScriptCall) -> Any:
        """Runs a script by its SHA1, loading it first if Redis does not have it."""
        evalsha = _evalsha(call)
        try:
            return await self.execute(*evalsha)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", call.source)
            return await self.execute(*evalsha)

    async def aclose(self) -> None:
        line, self._line = self._line, None
        if line is not None:
            line.fail(RedisConnectionError("The client was closed."))
            await self._close(line)

    async def _current_line(self) -> _Line:
        line = self._line
        if line is not None and not line.retired:
            return line
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    async def _open(self) -> _Line:
        connection = await self.redis.connection_pool.get_connection()
        self._line = _Line(connection)
        return self._line

    def _flush(self, line: _Line) -> None:
        line.write()
        if line.reader is None and line.owed:
            line.reader = asyncio.ensure_future(self._read(line))

    async def _read(self, line: _Line) -> None:
        connection = line.connection
        try:
            while line.owed:
                try:
                    reply: Any = await connection.read_response()
                except ResponseError as error:
                    reply = error
                future = line.owed.popleft()
                if future.done():  # its caller gave up
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except BaseException as error:  # lost, timed out, or closed: nothing more will come
            line.fail(error if isinstance(error, Exception) else RedisConnectionError(str(error)))
            self._retire(line)
            if not isinstance(error, Exception):
                raise
        finally:
            line.reader = None
        if line.retired:
            await self._close(line)

    def _retire(self, line: _Line) -> None:
        line.retired = True
        if self._line is line:
            self._line = None
        if line.reader is None and not line.owed:
            closing = asyncio.ensure_future(self._close(line))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _close(self, line: _Line) -> None:
        if line.closed:
            return
        line.closed = True
        if line.reader is not None:
            line.reader.cancel()
        await line.connection.disconnect(nowait=True)
        await self.redis.connection_pool.release(line.connection)


class _Call:
    """A thread's command: its reply or error, once the group it went in was answered."""

    __slots__ = ("args", "error", "lead", "ready", "reply")

    def __init__(self, args: tuple[Any, ...]):
        self.args = args
        self.reply: Any = None
        self.error: BaseException | None = None
        self.lead = False  # woken to send the next group rather than with a reply
        self.ready = _thread.allocate_lock()
        self.ready.acquire()

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.reply


class ThreadMultiplexer:
    """Sends commands for any number of threads on one connection of ``redis``'s pool."""

    def __init__(self, redis: redis.Redis):
        self.redis = redis
        self._reset()

    def _reset(self) -> None:  # also in a forked child: its parent's lock and line are not its
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self._busy = False
        self._connection: Any = None

    def execute(self, *args: Any) -> Any:
        """Sends one command; its reply (a Redis error reply raises, as redis-py's does)."""
        if self._pid != os.getpid():
            self._reset()
        call = _Call(args)
        with self._lock:
            self._waiting.append(call)
            lead = not self._busy
            self._busy = True
        if not lead:
            call.ready.acquire()  # released with the reply, or to send the next group
            if not call.lead:
                return call.outcome()
        self._send_group()
        return call.outcome()

    def script(self, call: ScriptCall) -> Any:
        """Runs a script by its SHA1, loading it first if Redis does not have it."""
        evalsha = _evalsha(call)
        try:
            return self.execute(*evalsha)
        except NoScriptError:
            self.execute("SCRIPT", "LOAD", call.source)
            return self.execute(*evalsha)

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            self._drop(connection)

    def _send_group(self) -> None:
        """Sends what is waiting, this thread's command first, and wakes its other callers."""
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            self._answer(group)
        finally:
            with self._lock:
                successor = self._waiting[0] if self._waiting else None
                self._busy = successor is not None
            for call in group[1:]:
                call.ready.release()
            if successor is not None:
                successor.lead = True
                successor.ready.release()

    def _answer(self, group: list[_Call]) -> None:
        answered = 0
        connection = self._connection
        try:
            if connection is None:
                connection = self._connection = self.redis.connection_pool.get_connection()
            connection.send_packed_command(
                connection.pack_commands([call.args for call in group]), check_health=False
            )
            for call in group:
                try:
                    call.reply = connection.read_response()
                except ResponseError as error:
                    call.error = error
                answered += 1
        except BaseException as error:  # lost or timed out: the unanswered calls fail
            for call in group[answered:]:
                call.error = error
            if connection is not None:
                self._connection = None
                self._drop(connection)
            if not isinstance(error, Exception):
                raise

    def _drop(self, connection: Any) -> None:
        connection.disconnect()
        self.redis.connection_pool.release(connection)
