"""Runs one chat job: claim it, call the provider with retries, publish deltas, end it once."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from shared.errors import ChatqError, ProviderError, ProviderRejected, http_status_and_type
from shared.jobs import ChatJob, ChatResult, JobError, JobStatus, Timings
from shared.settings import RetryPolicy
from shared.store import JobStore
from workers.provider import ProviderClient, ProviderReply, StreamState
from workers.retry import backoff_delay
from workers.streaming import DeltaPublisher

log = logging.getLogger("chatq.worker")


class ChatRunner:
    """Everything a chat task does, with its collaborators injected."""

    def __init__(
        self,
        store: JobStore,
        provider: ProviderClient,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.provider = provider
        self.policy = policy
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.clock = clock

    def run(self, job: ChatJob) -> ChatResult | None:
        """Executes the job; None if it had already ended (a redelivery, or a cancel)."""
        started = self.store.start(job)
        if isinstance(started, JobStatus):
            log.info("job %s skipped: already %s", job.id, started.value)
            return None
        timings = Timings(created_at=job.created_at, started_at=self.clock())
        try:
            reply = self._call_with_retries(job, attempt_number=started, timings=timings)
            result = ChatResult(
                job_id=job.id,
                status=JobStatus.done,
                model=reply.model or job.request.model,
                content=reply.content,
                finish_reason=reply.finish_reason,
                usage=reply.usage,
                timings=timings,
                attempts=started,
            )
        except ChatqError as exc:
            log.warning("job %s failed: %s", job.id, exc.message)
            result = failed_result(job, exc, timings, started)
        except Exception as exc:  # a bug must still end the job, with a reason
            log.exception("job %s failed unexpectedly", job.id)
            internal = ChatqError(f"Internal worker error: {exc}")
            result = failed_result(job, internal, timings, started)
        timings.finished_at = self.clock()
        if self.store.finish(result):
            log.info(
                "job %s %s in %.1f ms",
                job.id,
                result.status.value,
                (timings.finished_at - timings.started_at) * 1000,
            )
        return result

    def _call_with_retries(
        self, job: ChatJob, *, attempt_number: int, timings: Timings
    ) -> ProviderReply:
        publisher: DeltaPublisher | None = None
        if job.request.stream:
            already = self.store.published_text(job.id) if attempt_number > 1 else ""
            publisher = DeltaPublisher(self._publisher_for(job.id, timings), already)
        retry = 0
        while True:
            try:
                if publisher is None:
                    body = job.request.provider_body(stream=False)
                    return self.provider.complete(body, job_id=job.id)
                return self._stream_once(job, publisher)
            except ProviderRejected:
                raise
            except ProviderError as exc:
                retry += 1
                if retry > self.policy.max_retries:
                    raise
                delay = backoff_delay(
                    retry,
                    getattr(exc, "retry_after", None),
                    self.rng,
                    initial_delay=self.policy.initial_delay,
                    max_delay=self.policy.max_delay,
                )
                log.info("job %s retry %d in %.2f s: %s", job.id, retry, delay, exc.message)
                self.sleep(delay)

    def _stream_once(self, job: ChatJob, publisher: DeltaPublisher) -> ProviderReply:
        publisher.new_attempt()
        state = StreamState()
        for piece in self.provider.stream(
            job.request.provider_body(stream=True), job_id=job.id, state=state
        ):
            publisher.feed(piece)
        return ProviderReply(
            content=publisher.published,
            finish_reason=state.finish_reason,
            usage=state.usage,
            model=state.model,
        )

    def _publisher_for(self, job_id: str, timings: Timings) -> Callable[[str, bool], None]:
        def publish(content: str, first: bool) -> None:
            if first:
                timings.first_token_at = self.clock()
            self.store.append_delta(job_id, content, first=first)

        return publish


def failed_result(job: ChatJob, exc: ChatqError, timings: Timings, attempts: int) -> ChatResult:
    _, error_type = http_status_and_type(exc)
    return ChatResult(
        job_id=job.id,
        status=JobStatus.failed,
        model=job.request.model,
        timings=timings,
        attempts=attempts,
        error=JobError(type=error_type, code=exc.code, message=exc.message),
    )
