"""The asyncio twin of ``shared.store.JobStore``'s reading side (and create/cancel)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from redis.asyncio import Redis

from shared import keys
from shared.errors import JobNotFound, JobTimeout
from shared.jobs import ChatJob, ChatResult
from shared.protocol import EndEvent, Event, decode_event
from shared.scripts import lua
from shared.settings import Settings
from shared.store import (
    CLIENT_OPTIONS,
    DEFAULT_LOST_JOB_CHECK_S,
    MAX_BLOCK_MS,
    JobRecord,
    cancelled_result,
    create_args,
    create_keys,
    finish_args,
    finish_keys,
)


class AsyncJobStore:
    def __init__(
        self,
        redis: Redis,
        *,
        result_ttl_s: int,
        events_ttl_s: int,
        lost_job_check_s: float = DEFAULT_LOST_JOB_CHECK_S,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = redis
        self.result_ttl_s = result_ttl_s
        self.events_ttl_s = events_ttl_s
        self.lost_job_check_s = lost_job_check_s
        self.clock = clock
        self._create = redis.register_script(lua("shared", "create_job.lua"))
        self._finish = redis.register_script(lua("shared", "finish_job.lua"))

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | None = None) -> AsyncJobStore:
        client = redis or Redis.from_url(settings.effective_redis_url, **CLIENT_OPTIONS)
        return cls(
            client,
            result_ttl_s=settings.result_ttl_s,
            events_ttl_s=settings.events_ttl_s,
            lost_job_check_s=settings.lost_job_check_s,
        )

    async def create(self, job: ChatJob, queue: str) -> bool:
        """Records a newly accepted job; False if its id was taken (then it must not be sent)."""
        created = await self._create(
            keys=create_keys(job.id, queue),
            args=create_args(job, queue, self.clock() + self.lost_job_check_s),
        )
        return bool(created)

    async def get(self, job_id: str) -> JobRecord:
        data = await self.redis.hgetall(keys.job_key(job_id))
        if not data:
            raise JobNotFound(f"No job with id '{job_id}' (unknown, or its record expired).")
        return JobRecord.from_hash(job_id, data)

    async def cancel(self, job_id: str, reason: str = "Cancelled by the caller.") -> bool:
        now = self.clock()
        result = cancelled_result(job_id, reason, now)
        reply = await self._finish(
            keys=finish_keys(job_id),
            args=finish_args(result, now, self.result_ttl_s, self.events_ttl_s, must_exist=True),
        )
        if reply == -1:
            raise JobNotFound(f"No job with id '{job_id}' (unknown, or its record expired).")
        return reply == 1

    async def events(
        self, job_id: str, *, timeout: float, since: str = "0-0"
    ) -> AsyncIterator[Event]:
        deadline = time.monotonic() + timeout
        stream = keys.events_key(job_id)
        last_id = since
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                raise JobTimeout(f"Job '{job_id}' did not finish within {timeout:g} s.")
            reply = await self.redis.xread({stream: last_id}, block=min(remaining_ms, MAX_BLOCK_MS))
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    event = decode_event(fields)
                    yield event
                    if isinstance(event, EndEvent):
                        return

    async def wait(self, job_id: str, *, timeout: float, fresh: bool = False) -> ChatResult:
        """The job's result, waiting up to ``timeout`` for it to end. ``fresh``: the job was
        submitted just now, so its end is in its event stream: the record is not read."""
        if not fresh:
            record = await self.get(job_id)
            if record.result is not None and record.status.is_terminal:
                return record.result
        async for event in self.events(job_id, timeout=timeout):
            if isinstance(event, EndEvent):
                return event.result
        raise AssertionError("unreachable: events() ends with an EndEvent or raises")
