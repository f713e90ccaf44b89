"""The synchronous Python SDK: submit chat jobs, wait for results, iterate streamed deltas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chatq.producers.jobs import (
    Messages,
    check_retry,
    check_webhook,
    count_submitted,
    queue_errors,
    raise_for_result,
    send_webhook,
)
from chatq.producers.openai_format import ChunkServer
from chatq.producers.sdk_base import ClientBase, Inputs, text_of, vectors_of
from chatq.producers.sessions import Conversations
from chatq.shared.celery_config import queue_for
from chatq.shared.completion import text_completion
from chatq.shared.job_state.dead_letters import DeadLetters
from chatq.shared.jobs import ChatJob, ChatRequest, ChatResult, JobStatus
from chatq.shared.protocol import DeltaEvent, EndEvent
from chatq.shared.sessions import SessionStore, UserStore
from chatq.shared.settings import Settings, get_settings
from chatq.shared.store import JobRecord, JobStore
from redis import Redis


class ChatqClient(ClientBase[str]):
    """Submits jobs through the Celery queue and reads their outcome from Redis.

    >>> client = ChatqClient()
    >>> client.chat("Hello!").content
    """

    def __init__(self, settings: Settings | None = None, *, redis: Redis | None = None):
        super().__init__(settings or get_settings())
        self.store = JobStore.from_settings(self.settings, redis)
        self.users = UserStore(self.store.redis)
        self.conversations = Conversations(
            self.settings,
            SessionStore(self.store.redis, self.settings),
            self.users,
            self._summarise,
        )

    def _send(self, job: ChatJob, queue: str, *, resend_queued: bool, new_id: bool) -> str:
        check_webhook(job.webhook_url, self.settings)
        job = self.with_history(job, job.tenant)
        with queue_errors(self.settings):
            if self.store.create(job, queue, new_id=new_id):  # recorded and queued in one step
                count_submitted(job)
                return job.id
            record = self.store.get(job.id) if resend_queued or job.request_hash else None
        if job.request_hash is not None and record is not None:
            check_retry(job, record)
        if resend_queued and record is not None and record.status is JobStatus.queued:
            with queue_errors(self.settings):
                self.store.send(job.model_dump(mode="json", exclude_none=True), queue)
        return job.id

    def with_history(self, job: ChatJob, tenant: str | None) -> ChatJob:
        """The job with its session's history and its user's profile in the request."""
        request = job.request
        if request.session_id is None and request.user is None:
            return job
        built, new_from = self.conversations.build(request, tenant)
        if request.user is not None:
            self.users.note_job(tenant, request.user, job.id)
        return job.model_copy(update={"request": built, "session_new_from": new_from})

    def _summarise(self, request: ChatRequest, tenant: str | None) -> str:
        """A summary for a session's compaction, made by a job through the same queue."""
        job_id = self.submit(request=request, tenant=tenant)
        return raise_for_result(self.result(job_id)).content or ""

    def result(self, job_id: str, timeout: float | None = None) -> ChatResult:
        """Waits for the job to end; the result says done, failed (and why) or cancelled."""
        return self.store.wait(job_id, timeout=timeout or self.settings.wait_timeout_s)

    def stream(self, job_id: str, timeout: float | None = None) -> Iterator[str]:
        """The answer's text deltas from the first one, however late this is called.

        Raises the job's error if it fails or is cancelled.
        """
        for event in self.store.events(job_id, timeout=timeout or self.settings.wait_timeout_s):
            if text := text_of(event):
                yield text

    def chunks(self, job_id: str, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The answer as ``chat.completion.chunk`` objects, as the gateway streams them (tool
        calls, reasoning, logprobs and all), from the first; then one with the usage."""
        record = self.store.get(job_id)
        server = ChunkServer(
            job_id, record.model or "", int(record.created_at or 0), include_usage=True
        )
        streamed = False
        for event in self.store.events(job_id, timeout=timeout or self.settings.wait_timeout_s):
            if isinstance(event, DeltaEvent):
                streamed = True
                yield server.serve(event.chunk)
            elif isinstance(event, EndEvent):
                answer = raise_for_result(event.result).completion or text_completion("")
                if not streamed:
                    yield from server.replay(answer)
                if (usage := server.usage(answer)) is not None:
                    yield usage

    def chat(self, messages: Messages, *, model: str | None = None, **params: Any) -> ChatResult:
        """Submits and waits: the finished result, or the job's error raised."""
        job_id = self.submit(messages, model=model, **params)
        return raise_for_result(self.result(job_id))

    def embed(
        self, inputs: Inputs, *, model: str | None = None, dimensions: int | None = None
    ) -> list[list[float]]:
        """Submits an embeddings job and waits: a vector per input, in order (a text, or a
        token array, is one input); the job's error raised if it failed."""
        job_id = self.submit(**self.embedding_job(inputs, model, dimensions))
        return vectors_of(raise_for_result(self.result(job_id)))

    def chat_stream(
        self, messages: Messages, *, model: str | None = None, **params: Any
    ) -> Iterator[str]:
        """Submits a streaming job and yields its deltas."""
        job_id = self.submit(messages, model=model, stream=True, **params)
        yield from self.stream(job_id)

    def status(self, job_id: str) -> JobRecord:
        return self.store.get(job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancels a job that has not ended; False if it already had."""
        cancelled = self.store.cancel(job_id)
        if cancelled and (url := self.store.get(job_id).webhook_url):
            send_webhook(self.celery, job_id, url, self.settings)
        return cancelled

    def dead_letters(self) -> DeadLetters:
        """The registry of jobs that failed for good."""
        return DeadLetters(
            self.store.redis,
            result_ttl_s=self.settings.result_ttl_s,
            lost_job_check_s=self.settings.lost_job_check_s,
        )

    def retry_dead_letter(self, job_id: str) -> bool:
        """Sends a dead-lettered job again, under the same id; False if it was not there."""
        job = self.dead_letters().take(job_id)
        if job is None:
            return False
        queue = queue_for(job.request.priority, self.settings)
        self.store.send(job.model_dump(mode="json", exclude_none=True), queue)
        return True

    def close(self) -> None:
        self.store.close()
        self.celery.close()

    def __enter__(self) -> ChatqClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
