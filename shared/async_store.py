"""The job store on an asyncio Redis client: the reading side, create and cancel, sending
what ``chatq.shared.job_state`` builds (as ``chatq.shared.store`` does on a synchronous one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from chatq.shared.job_state import JobRecord, StoreBase, created, not_found, pipelined_async
from chatq.shared.jobs import ChatJob, ChatResult
from chatq.shared.multiplexed import Multiplexer
from chatq.shared.protocol import EndEvent, Event
from chatq.shared.redis_clients import async_client
from redis.asyncio import Redis


class AsyncJobStore(StoreBase):
    redis: Redis
    lines: Multiplexer
    connect = staticmethod(async_client)
    multiplex = Multiplexer

    async def aclose(self) -> None:
        """Closes its connections, and its client's."""
        await self.lines.aclose()
        await self.redis.aclose()

    async def create(
        self, job: ChatJob, queue: str, *, reply_to: str | None = None, new_id: bool = False
    ) -> bool:
        """Records a newly accepted job and queues its message; False if its id was taken.
        ``reply_to``: the channel its end is published on (``chatq.shared.end_notices``);
        ``new_id``: the id was generated for this job."""
        call = self.commands.create(job, queue, reply_to=reply_to, new_id=new_id)
        if self.durability is None:
            return created(job, await self.send_command(call))
        reply, replicas = await pipelined_async(self.redis, [call, self.durability.wait()])
        self.durability.check(job.id, replicas)
        return created(job, reply)

    async def send(self, job: dict[str, Any], queue: str) -> None:
        """Queues a message for a job already recorded (``job``: the ``ChatJob`` as JSON)."""
        await self.send_command(self.commands.send(job, queue))

    async def get(self, job_id: str) -> JobRecord:
        return self.commands.record(job_id, await self.send_command(self.commands.get(job_id)))

    async def cancel(self, job_id: str, reason: str = "Cancelled by the caller.") -> bool:
        reply = await self.send_command(self.commands.cancel(job_id, reason))
        return self.commands.ended(reply, job_id)

    async def events(
        self, job_id: str, *, timeout: float, since: str = "0-0", watch: bool = True
    ) -> AsyncIterator[Event]:
        """As ``JobStore.events``."""
        if watch:
            watched = self.commands.watched(await self.send_command(self.commands.watch(job_id)))
            if watched.end_in_record_only and watched.result is not None:
                yield EndEvent(watched.result)
                return
        cursor = self.commands.events(job_id, timeout=timeout, since=since)
        while not cursor.ended:
            for event in cursor.take(await self.send_command(cursor.read())):
                yield event

    async def wait(self, job_id: str, *, timeout: float) -> ChatResult:
        """The job's result, waiting up to ``timeout`` for it to end."""
        watched = self.commands.watched(await self.send_command(self.commands.watch(job_id)))
        if watched.status is None:
            raise not_found(job_id)
        if (result := watched.final_result) is not None:
            return result
        async for event in self.events(job_id, timeout=timeout, watch=False):
            if isinstance(event, EndEvent):
                return event.result
        raise AssertionError("unreachable: events() ends with an EndEvent or raises")
