"""The asyncio Python SDK: the same calls as ``ChatqClient``, awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from redis.asyncio import Redis

from producers import jobs
from producers.client import ChatqClient
from producers.jobs import Messages, raise_for_result
from producers.sdk_base import ClientBase, text_of
from shared.async_store import AsyncJobStore
from shared.jobs import ChatJob, ChatResult, JobStatus
from shared.protocol import Event
from shared.settings import Settings, get_settings
from shared.store import JobRecord


class AsyncChatqClient(ClientBase[Awaitable[str]]):
    """Submits jobs through the Celery queue and awaits their outcome from Redis."""

    def __init__(self, settings: Settings | None = None, *, redis: Redis | None = None):
        super().__init__(settings or get_settings())
        self.store = AsyncJobStore.from_settings(self.settings, redis)
        self._sync: ChatqClient | None = None

    async def _send(self, job: ChatJob, queue: str, *, resend_queued: bool) -> str:
        if job.webhook_url:  # resolving its host may take a while: not in the event loop
            await asyncio.to_thread(jobs.check_webhook, job.webhook_url, self.settings)
        if job.request.session_id is not None or job.request.user is not None:
            job = await asyncio.to_thread(self._history().with_history, job, job.tenant)
        with jobs.queue_errors(self.settings):
            if await self.store.create(job, queue):  # recorded and queued in one step
                jobs.count_submitted(job)
            elif resend_queued and (await self.store.get(job.id)).status is JobStatus.queued:
                await self.store.send(job.model_dump(mode="json", exclude_none=True), queue)
        return job.id

    def _history(self) -> ChatqClient:
        """A synchronous client for sessions, whose compaction waits on a summary job."""
        if self._sync is None:
            self._sync = ChatqClient(self.settings)
        return self._sync

    async def result(
        self, job_id: str, timeout: float | None = None, *, fresh: bool = False
    ) -> ChatResult:
        """Waits for the job to end. ``fresh``: this caller submitted it just now (one Redis
        command fewer: its end is read from its event stream, not its record)."""
        return await self.store.wait(
            job_id, timeout=timeout or self.settings.wait_timeout_s, fresh=fresh
        )

    async def events(self, job_id: str, timeout: float | None = None) -> AsyncIterator[Event]:
        """Raw protocol events (deltas, then the end event) from the first."""
        async for event in self.store.events(
            job_id, timeout=timeout or self.settings.wait_timeout_s
        ):
            yield event

    async def stream(self, job_id: str, timeout: float | None = None) -> AsyncIterator[str]:
        async for event in self.events(job_id, timeout):
            if text := text_of(event):
                yield text

    async def chat(
        self, messages: Messages, *, model: str | None = None, **params: Any
    ) -> ChatResult:
        job_id = await self.submit(messages, model=model, **params)
        return raise_for_result(await self.result(job_id))

    async def status(self, job_id: str) -> JobRecord:
        return await self.store.get(job_id)

    async def cancel(self, job_id: str) -> bool:
        """Cancels a job that has not ended; False if it already had."""
        cancelled = await self.store.cancel(job_id)
        if cancelled and (url := (await self.store.get(job_id)).webhook_url):
            await asyncio.to_thread(jobs.send_webhook, self.celery, job_id, url, self.settings)
        return cancelled

    async def aclose(self) -> None:
        if self._sync is not None:
            self._sync.close()
        await self.store.redis.aclose()
        self.celery.close()
