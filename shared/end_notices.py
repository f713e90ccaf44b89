"""The ends of the jobs an asyncio process awaits, pushed to it: one pub/sub channel per
process, on which the worker that ends each job publishes its result (``finish_job.lua``).

A wait costs no Redis command and no connection of its own. Pub/sub keeps nothing for a
subscriber that is away, so each time the subscription is made (at first, and whenever
redis-py has reconnected it) the records of the jobs still awaited are read once, and a
wait that reaches its deadline reads its job's record before giving up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from typing import Any

from chatq.shared import keys
from chatq.shared.async_store import AsyncJobStore
from chatq.shared.errors import JobTimeout
from chatq.shared.job_state import pipelined_async
from chatq.shared.jobs import ChatResult
from chatq.shared.redis_clients import async_client
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("chatq.end_notices")

RESUBSCRIBE_AFTER_S = 1.0  # after losing Redis, the next try to subscribe
# The listener's connection waits for messages without a read timeout; TCP keepalive finds a
# peer that is gone (about 10 + 3 x 5 s) where the kernel allows setting it.
KEEPALIVE: dict[int, int] = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}


class EndNotices:
    """Awaits job ends published on this process's reply channel."""

    def __init__(self, store: AsyncJobStore, url: str):
        self.store = store
        self.channel = keys.reply_channel(uuid.uuid4().hex)
        self._redis: Redis = async_client(
            url, socket_timeout=None, socket_keepalive=True, socket_keepalive_options=KEEPALIVE
        )
        self._awaited: dict[str, asyncio.Future[ChatResult]] = {}
        self._listener: asyncio.Task[None] | None = None

    def expect(self, job_id: str) -> None:
        """Notes that this process awaits the job's end: call before submitting it."""
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        self._awaited[job_id] = asyncio.get_running_loop().create_future()

    def expects(self, job_id: str) -> bool:
        return job_id in self._awaited

    def forget(self, job_id: str) -> None:
        """The job was not submitted after all, or its end is no longer awaited."""
        future = self._awaited.pop(job_id, None)
        if future is not None:
            future.cancel()

    async def wait(self, job_id: str, *, timeout: float) -> ChatResult:
        """The end of an expected job, within ``timeout`` seconds."""
        future = self._awaited[job_id]
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            if (result := (await self.store.get(job_id)).final_result) is not None:
                return result
            raise JobTimeout(f"Job '{job_id}' did not finish within {timeout:g} s.") from None
        finally:
            self.forget(job_id)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        await self._take(message)
            except (RedisError, OSError) as error:
                log.warning("reply channel lost (%s); subscribing again", error)
                await asyncio.sleep(RESUBSCRIBE_AFTER_S)

    async def _take(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":  # at first, or after redis-py reconnected
            await self._catch_up()
        elif message["type"] == "message":
            try:
                result = ChatResult.model_validate_json(message["data"])
            except ValueError:  # not an end chatq wrote: one bad message stops no wait
                log.warning("ignored a message on %s that is not a job's end", self.channel)
                return
            self._settle(result)

    def _settle(self, result: ChatResult) -> None:
        future = self._awaited.get(result.job_id)
        if future is not None and not future.done():
            future.set_result(result)

    async def _catch_up(self) -> None:
        """Settles the awaited jobs that ended while this process was not subscribed."""
        job_ids = list(self._awaited)
        if not job_ids:
            return
        replies = await pipelined_async(self.store.redis, map(self.store.commands.get, job_ids))
        for job_id, reply in zip(job_ids, replies, strict=True):
            if reply and (result := self.store.commands.record(job_id, reply).final_result):
                self._settle(result)
