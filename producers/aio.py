"""The asyncio Python SDK: the same calls as ``ChatqClient``, awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from producers.client import ChatqClient
from producers.jobs import (
    Messages,
    check_webhook,
    count_submitted,
    prepare_job,
    producer_app,
    queue_errors,
    raise_for_result,
    send_webhook,
)
from shared.async_store import AsyncJobStore
from shared.deployments import DeploymentRegistry
from shared.jobs import ChatRequest, ChatResult
from shared.protocol import DeltaEvent, EndEvent, Event
from shared.settings import Settings, get_settings
from shared.store import JobRecord


class AsyncChatqClient:
    """Submits jobs through the Celery queue and awaits their outcome from Redis."""

    def __init__(self, settings: Settings | None = None, *, redis: Redis | None = None):
        self.settings = settings or get_settings()
        self.store = AsyncJobStore.from_settings(self.settings, redis)
        self.celery = producer_app(self.settings)
        self.deployments = DeploymentRegistry(self.settings)
        self._sync: ChatqClient | None = None

    async def submit(
        self,
        messages: Messages | None = None,
        *,
        model: str | None = None,
        request: ChatRequest | None = None,
        job_id: str | None = None,
        tenant: str | None = None,
        webhook_url: str | None = None,
        privacy: bool = True,
        **params: Any,
    ) -> str:
        job, queue = prepare_job(
            self.settings,
            self.deployments,
            messages,
            model,
            request,
            job_id,
            params,
            tenant=tenant,
            webhook_url=webhook_url,
            privacy=privacy,
        )
        if webhook_url:  # resolving its host may take a while: not in the event loop
            await asyncio.to_thread(check_webhook, webhook_url, self.settings)
        if job.request.session_id is not None or job.request.user is not None:
            job = await asyncio.to_thread(self._history().with_history, job, tenant)
        with queue_errors(self.settings):
            if await self.store.create(job, queue):  # recorded and queued in one step
                count_submitted(job)
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
            if isinstance(event, DeltaEvent):
                if text := event.text:
                    yield text
            elif isinstance(event, EndEvent):
                raise_for_result(event.result)

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
            await asyncio.to_thread(send_webhook, self.celery, job_id, url, self.settings)
        return cancelled

    async def aclose(self) -> None:
        if self._sync is not None:
            self._sync.close()
        await self.store.redis.aclose()
        self.celery.close()
