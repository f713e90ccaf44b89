"""The asyncio Python SDK: the same calls as ``ChatqClient``, awaitable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from chatq.producers import jobs
from chatq.producers.client import ChatqClient
from chatq.producers.jobs import Messages, raise_for_result
from chatq.producers.sdk_base import ClientBase, Inputs, text_of, vectors_of
from chatq.producers.sessions import summary_message
from chatq.shared.async_store import AsyncJobStore
from chatq.shared.end_notices import EndNotices
from chatq.shared.jobs import ChatJob, ChatMessage, ChatResult, JobStatus
from chatq.shared.protocol import Event
from chatq.shared.settings import Settings, get_settings
from chatq.shared.store import JobRecord
from redis.asyncio import Redis


class AsyncChatqClient(ClientBase[Awaitable[str]]):
    """Submits jobs through the Celery queue and awaits their outcome from Redis."""

    def __init__(self, settings: Settings | None = None, *, redis: Redis | None = None):
        super().__init__(settings or get_settings())
        self.store = AsyncJobStore.from_settings(self.settings, redis)
        self._sync: ChatqClient | None = None
        self._ends: EndNotices | None = None

    async def submit_awaited(self, messages: Messages | None = None, **fields: Any) -> str:
        """``submit``, for a caller that awaits the job's end next (``result``): the end is
        published to this process instead of the job's stream, and the wait costs Redis
        nothing."""
        job, queue = self.prepare(messages, **fields)
        new_id = fields.get("job_id") is None and fields.get("idempotency_key") is None
        return await self._send(job, queue, resend_queued=False, new_id=new_id, awaited=True)

    async def _send(
        self, job: ChatJob, queue: str, *, resend_queued: bool, new_id: bool, awaited: bool = False
    ) -> str:
        if job.webhook_url:  # resolving its host may take a while: not in the event loop
            await asyncio.to_thread(jobs.check_webhook, job.webhook_url, self.settings)
        if job.request.session_id is not None or job.request.user is not None:
            job = await asyncio.to_thread(self._history().with_history, job, job.tenant)
        ends = self._end_notices() if awaited else None
        if ends is not None and ends.expects(job.id):  # a retry of a job awaited here already
            ends = None
        if ends is not None:
            ends.expect(job.id)
        created = False
        try:
            with jobs.queue_errors(self.settings):
                reply_to = ends.channel if ends is not None else None
                async with asyncio.timeout(self._submit_timeout_s):
                    created = await self.store.create(job, queue, reply_to=reply_to, new_id=new_id)
                if created:  # recorded and queued in one step
                    jobs.count_submitted(job)
                elif resend_queued or job.request_hash is not None:
                    record = await self.store.get(job.id)
                    if job.request_hash is not None:
                        jobs.check_retry(job, record)
                    if resend_queued and record.status is JobStatus.queued:
                        await self.store.send(job.model_dump(mode="json", exclude_none=True), queue)
        finally:
            if ends is not None and not created:  # another submission's job: not ours
                ends.forget(job.id)
        return job.id

    @property
    def _submit_timeout_s(self) -> float:
        settings = self.settings
        waits = settings.redis_wait_timeout_ms / 1000 if settings.redis_wait_replicas else 0
        return settings.submit_timeout_s + waits

    def _end_notices(self) -> EndNotices:
        if self._ends is None:
            self._ends = EndNotices(self.store, self.settings.effective_redis_url)
        return self._ends

    def _history(self) -> ChatqClient:
        """A synchronous client for sessions, whose compaction waits on a summary job."""
        if self._sync is None:
            self._sync = ChatqClient(self.settings)
        return self._sync

    async def branch_session(self, tenant: str | None, source: str, target: str) -> None:
        """Starts session ``target`` as a copy of session ``source``."""
        sessions = self._history().conversations.sessions
        await asyncio.to_thread(sessions.branch, tenant, source, target, ttl_kind="long")

    async def session_messages(self, tenant: str | None, session_id: str) -> list[ChatMessage]:
        """A session's conversation as messages: its summary (if any), then its turns."""
        conversations = self._history().conversations
        session = await asyncio.to_thread(conversations.sessions.load, tenant, session_id)
        summary = [summary_message(session.summary)] if session.summary else []
        return [*summary, *session.turns]

    async def result(self, job_id: str, timeout: float | None = None) -> ChatResult:
        """Waits for the job to end."""
        timeout = timeout or self.settings.wait_timeout_s
        if self._ends is not None and self._ends.expects(job_id):
            return await self._ends.wait(job_id, timeout=timeout)
        return await self.store.wait(job_id, timeout=timeout)

    async def events(
        self, job_id: str, timeout: float | None = None, *, fresh: bool = False
    ) -> AsyncIterator[Event]:
        """Raw protocol events (deltas, then the end event) from the first. ``fresh``: this
        caller submitted the job just now with ``submit`` (its end is in its stream)."""
        async for event in self.store.events(
            job_id, timeout=timeout or self.settings.wait_timeout_s, watch=not fresh
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

    async def embed(
        self, inputs: Inputs, *, model: str | None = None, dimensions: int | None = None
    ) -> list[list[float]]:
        """Submits an embeddings job and waits: a vector per input, in order."""
        job_id = await self.submit_awaited(**self.embedding_job(inputs, model, dimensions))
        return vectors_of(raise_for_result(await self.result(job_id)))

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
        if self._ends is not None:
            await self._ends.aclose()
        await self.store.aclose()
        self.celery.close()
