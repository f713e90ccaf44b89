"""Runs one chat job: claim it, pick a deployment, keep to the cluster's limits, call the
provider with retries and fallbacks, publish deltas, and end the job exactly once."""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.commands.core import Script

from shared import keys, metrics
from shared.deployments import Deployment, DeploymentRegistry
from shared.errors import (
    ChatqError,
    ProviderAuthRejected,
    ProviderError,
    ProviderRejected,
    RateLimited,
)
from shared.jobs import ChatJob, ChatResult, JobStatus, Timings
from shared.outage import retry_while_redis_down
from shared.sessions import SessionStore, UserStore
from shared.settings import RetryPolicy
from shared.store import DEFAULT_LEASE_S, Busy, JobStore
from shared.tokens import count_prompt_tokens
from workers.batching import MicroBatcher
from workers.chat_batches import MicroBatchCalls
from workers.chat_sharing import SharedAnswers
from workers.coalesce import Coalescer, request_key
from workers.health import DeploymentHealth, NoUsableKey
from workers.hooks import Answered, HookChain, Turn
from workers.limiter import ClusterLimiter, Deferred, Lease, estimate_tokens
from workers.provider import Endpoint, ProviderClient, ProviderReply, StreamState
from workers.results import deadline_result, failed_result, hook_answer, record_end_metrics
from workers.retry import backoff_delay
from workers.streaming import DeltaPublisher, DeltaSink

log = logging.getLogger("chatq.worker")

REDIS_PATIENCE_S = 300.0  # how long an answer in hand waits for Redis to come back
DEFAULT_COMPLETION_ESTIMATE = 256  # tokens charged up front when a job sets no max_tokens


@dataclass
class Attempts:
    """What the retry loop knows across tries of one job."""

    model: str
    queue: str
    retries: int = 0
    avoid: frozenset[str] = frozenset()


class ChatRunner(SharedAnswers, MicroBatchCalls):
    """Everything a chat task does, with its collaborators injected."""

    def __init__(
        self,
        store: JobStore,
        provider: ProviderClient,
        policy: RetryPolicy,
        deployments: DeploymentRegistry,
        limiter: ClusterLimiter,
        health: DeploymentHealth,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        lease_s: float = DEFAULT_LEASE_S,
        max_inline_wait_s: float = 30.0,
        coalescer: Coalescer | None = None,
        follow_timeout_s: float = 300.0,
        batch_window_s: float = 0.0,
        batch_max_size: int = 32,
        on_end: Callable[[ChatJob, ChatResult], None] | None = None,
        hooks: HookChain | None = None,
        sessions: SessionStore | None = None,
        users: UserStore | None = None,
    ):
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"  # Celery's node name, once known
        self.on_end = on_end  # told of every job this process ended (webhooks)
        self.hooks = hooks or HookChain()
        self.sessions = sessions
        self.users = users
        self.coalescer = coalescer
        self.batcher: MicroBatcher[ChatResult | None] | None = None
        if batch_window_s > 0:
            self.batcher = MicroBatcher(
                self._run_batch, window_s=batch_window_s, max_size=batch_max_size
            )
        self.follow_timeout_s = follow_timeout_s
        self.lease_s = lease_s
        self.max_inline_wait_s = max_inline_wait_s
        self.running: set[str] = set()  # jobs this process runs now: their claims are renewed
        self.store = store
        self.provider = provider
        self.policy = policy
        self.deployments = deployments
        self.limiter = limiter
        self.health = health
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.clock = clock
        self.scripts: dict[str, Script] = {}  # chained scripts (``shared.scripts.chain``)

    def run(self, job: ChatJob) -> ChatResult | None:
        """Executes the job; None if it had already ended (a redelivery, or a cancel).

        Raises ``Deferred`` before claiming the job if it cannot be sent soon.
        """
        deadline = job.deadline
        if deadline is not None and self.clock() > deadline:
            return self._end(job, deadline_result(job, self.clock()), attempts=0)
        key = request_key(job.request) if self.coalescer is not None else None
        if key is None:
            batch = self._batch_for(job)
            if batch is not None:
                return batch
            return self._run_call(job)
        assert self.coalescer is not None
        decision, claimed = self._join(key, job)
        started: int | None = None
        if claimed is not None:
            try:
                started = self._claimed(job, claimed)
            except Deferred:
                if decision.kind == "lead":
                    self.coalescer.done(key, job.id, None)
                raise
            if started is None:
                if decision.kind == "lead":
                    self.coalescer.done(key, job.id, None)
                return None
        if decision.kind == "lead":  # ending the job frees the key and caches the answer
            try:
                result = self._run_call(job, share_key=key, started=started)
            except BaseException:
                self.running.discard(job.id)  # first: freeing the key may fail too
                self.coalescer.done(key, job.id, None)
                raise
            if result is None:
                self.coalescer.done(key, job.id, None)
            return result
        if started is None:
            started = self._claim(job)
        if started is None:
            return None
        try:
            timings = Timings(created_at=job.created_at, started_at=self.clock())
            if decision.kind == "cached" and decision.cached is not None:
                shared = decision.cached.model_copy(update={"cached": True})
                result = self._share(job, shared, timings, started, published=False)
            else:
                result = self._follow(job, decision.leader or "", timings, started)
            if result is None:  # the leader did not get an answer: try on our own
                return self._run_call(job, started=started)
            self.coalescer.record_saving(result.usage.total_tokens if result.usage else 0)
            return self._end(job, result, attempts=started)
        finally:
            self.running.discard(job.id)

    def _claim(self, job: ChatJob) -> int | None:
        """Claims the job for this worker: the attempt number, or None if it already ended."""
        claim = self.store.claim(job, lease_s=self.lease_s, worker=self.worker_name)
        return self._claimed(job, claim)

    def _claimed(self, job: ChatJob, reply: Any) -> int | None:
        """The outcome of a claim: the attempt number, None if the job already ended; raises
        ``Deferred`` while another worker's claim on it is alive."""
        started = self.store.started(reply)
        if isinstance(started, Busy):  # a redelivery while its first run is alive
            raise Deferred(started.retry_in_s)
        if isinstance(started, JobStatus):
            log.info("job %s skipped: already %s", job.id, started.value)
            return None
        self.running.add(job.id)
        return started

    def _run_call(
        self, job: ChatJob, *, started: int | None = None, share_key: str | None = None
    ) -> ChatResult | None:
        """Makes the provider call for this job and ends it."""
        deployments = self.deployments.for_alias(job.request.model)
        first = self.health.choose(deployments, avoid=set())
        lease = self._book(job, first, max_wait_s=self.max_inline_wait_s)
        if isinstance(lease, float):
            if started is None:
                raise Deferred(lease)
            lease = self._wait_for_slot(job, first)  # already claimed: wait here
        if started is None:
            try:
                started = self._claim(job)
            except Deferred:
                self.limiter.settle(lease, 0)
                raise
            if started is None:
                self.limiter.settle(lease, 0)
                return None
        timings = Timings(created_at=job.created_at, started_at=self.clock())
        try:
            turn = Turn(job, job.request, deployments)
            answered = self.hooks.before(turn)
            if answered is not None:
                self.limiter.settle(lease, 0)
                result = self._hook_answer(job, answered, timings, started)
            else:
                sent = job.model_copy(update={"request": turn.request})
                reply = self._call_with_retries(
                    sent, deployments, first, lease, started, timings, turn=turn
                )
                result = ChatResult(
                    job_id=job.id,
                    status=JobStatus.done,
                    model=job.request.model,
                    content=self.hooks.after(turn, reply.content),
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
        finally:
            self.running.discard(job.id)
        return self._end(job, result, attempts=started, share_key=share_key)

    def _hook_answer(
        self, job: ChatJob, answered: Answered, timings: Timings, started: int
    ) -> ChatResult:
        """A job a hook answered without the provider."""
        if job.request.stream and answered.text:
            timings.first_token_at = self.clock()
            self.store.append_delta(job.id, answered.text, first=True)
        return hook_answer(job, answered, timings, started)

    def _end(
        self, job: ChatJob, result: ChatResult, *, attempts: int, share_key: str | None = None
    ) -> ChatResult:
        result.timings.finished_at = self.clock()
        dead_letter = job if result.status is JobStatus.failed else None
        cache_ttl_s = 0
        if share_key and self.coalescer is not None and job.request.cache:
            cache_ttl_s = self.coalescer.cache_ttl_s
            if result.status is JobStatus.done:
                self.coalescer.remember(share_key, result)
        ended = retry_while_redis_down(  # the answer is in hand: record it once Redis is back
            lambda: self.store.finish(
                result, dead_letter=dead_letter, share_key=share_key, cache_ttl_s=cache_ttl_s
            ),
            patience_s=REDIS_PATIENCE_S,
        )
        if ended and result.status is JobStatus.done:
            self._remember(job, result, share_key if cache_ttl_s else None)
        if ended:
            record_end_metrics(job, result)
            paid = result.usage and not (result.cached or result.coalesced_with)
            if job.tenant and paid and result.usage is not None:
                self.store.count_tenant_tokens(job.tenant, result.usage.total_tokens, self.clock())
            timings = result.timings
            took = (timings.finished_at or 0) - (timings.started_at or timings.finished_at or 0)
            log.info("job %s %s in %.1f ms", job.id, result.status.value, took * 1000)
            if self.on_end is not None:
                self.on_end(job, result)
        return result

    def _remember(self, job: ChatJob, result: ChatResult, cached_as: str | None) -> None:
        """Appends the turn to its session; notes a cached answer under its user (erasable)."""
        if self.sessions is not None and job.request.session_id is not None:
            self.sessions.record_answer(job, result)
        if self.users is not None and job.request.user is not None and cached_as is not None:
            self.users.note_cache_key(job.tenant, job.request.user, cached_as)

    def _book(
        self, job: ChatJob, deployment: Deployment, *, max_wait_s: float, choices: int = 1
    ) -> Lease | float:
        """A slot under the deployment's limits and pauses, or the wait for one."""
        request = job.request
        tokens = 0
        if deployment.tpm:
            prompt = count_prompt_tokens(m.text() for m in request.messages)
            completion = (request.max_tokens or DEFAULT_COMPLETION_ESTIMATE) * choices
            tokens = estimate_tokens(prompt, completion, DEFAULT_COMPLETION_ESTIMATE)
        return self.limiter.book(
            deployment, tokens, max_wait_s=max_wait_s, exact_estimate=request.max_tokens is not None
        )

    def _wait_for_slot(self, job: ChatJob, deployment: Deployment, choices: int = 1) -> Lease:
        """Books a slot, waiting in this thread for as long as it takes."""
        while True:
            lease = self._book(job, deployment, max_wait_s=float("inf"), choices=choices)
            if not isinstance(lease, float):
                return lease
            self.sleep(lease)

    def _call_with_retries(
        self,
        job: ChatJob,
        deployments: list[Deployment],
        deployment: Deployment,
        lease: Lease,
        attempt_number: int,
        timings: Timings,
        choices: int = 1,
        turn: Turn | None = None,
    ) -> ProviderReply:
        publisher: DeltaPublisher | None = None
        deltas: DeltaSink | None = None
        if job.request.stream:
            # Text a consumer may have already: from a dead worker's try, or a failed leader's.
            resumed = attempt_number > 1 or self.store.redis.exists(keys.events_key(job.id))
            already = self.store.published_text(job.id) if resumed else ""
            rewrite = self.hooks.stream(turn) if turn is not None else None
            deltas = DeltaSink(
                self.store, self.clock, job.id, timings, rewrite, published=bool(already)
            )
            publisher = DeltaPublisher(deltas.publish, already)
        state = Attempts(job.request.model, job.request.priority.value)
        while True:
            metrics.LIMITER_WAIT.labels(deployment.name).observe(lease.wait_s)
            if lease.wait_s > 0:
                self.sleep(lease.wait_s)
            reply: ProviderReply | None = None
            try:
                reply = self._call_once(job, deployment, publisher, choices)
                if reply.exhausted_for:  # spent, says the provider: slow everyone down now
                    self.limiter.pause(deployment, reply.exhausted_for)
                if deltas is not None:
                    deltas.finish()
                return reply
            except ProviderAuthRejected:
                delay = 0.0  # the key is retired; the next one is tried at once
            except ProviderRejected:
                raise
            except NoUsableKey:
                self.health.record_failure(deployment)
                state.avoid |= {deployment.name}
                if state.avoid >= {d.name for d in deployments}:
                    raise
                delay = 0.0
            except RateLimited as exc:
                metrics.PROVIDER_RATE_LIMITED.labels(deployment.name).inc()
                self.health.record_rate_limited(deployment)
                pause = exc.retry_after or backoff_delay(1, None, self.rng)
                self.limiter.pause(deployment, pause)
                delay = self._next_delay(state, exc)
            except ProviderError as exc:
                if self.health.record_failure(deployment) or len(deployments) > 1:
                    state.avoid |= {deployment.name}
                delay = self._next_delay(state, exc)
            finally:
                usage = reply.usage.total_tokens if reply and reply.usage else None
                self.limiter.settle(lease, usage)
            if delay:
                self.sleep(delay)
            deployment = self.health.choose(deployments, avoid=set(state.avoid))
            lease = self._wait_for_slot(job, deployment, choices)
            if job.deadline is not None and self.clock() > job.deadline:
                raise ChatqError(
                    "The job's deadline passed while it waited to be retried.",
                    code="deadline_exceeded",
                )

    def _next_delay(self, state: Attempts, exc: ProviderError) -> float:
        """The backoff before the next try; raises ``exc`` when the retries are used up."""
        state.retries += 1
        metrics.JOB_RETRIES.labels(state.model, state.queue).inc()
        if state.retries > self.policy.max_retries:
            raise exc
        retry_after = getattr(exc, "retry_after", None)
        delay = backoff_delay(
            state.retries,
            retry_after,
            self.rng,
            initial_delay=self.policy.initial_delay,
            max_delay=self.policy.max_delay,
        )
        if retry_after:  # the limiter's pause already holds every worker until then
            delay = 0.0
        log.info("retry %d in %.2f s: %s", state.retries, delay, exc.message)
        return delay

    def _call_once(
        self,
        job: ChatJob,
        deployment: Deployment,
        publisher: DeltaPublisher | None,
        choices: int = 1,
    ) -> ProviderReply:
        endpoint = Endpoint(deployment.url, self.health.api_key(deployment), deployment.transport)
        model = deployment.provider_model
        started = time.perf_counter()
        try:
            if publisher is None:
                body = job.request.provider_body(stream=False, model=model, choices=choices)
                return self.provider.complete(endpoint, body, job_id=job.id)
            return self._stream_once(job, endpoint, model, publisher)
        except ProviderAuthRejected:
            if endpoint.api_key is None:
                raise ProviderRejected(
                    "Provider requires an API key; none is configured."
                ) from None
            self.health.retire_key(deployment, endpoint.api_key)
            raise
        finally:
            metrics.PROVIDER_LATENCY.labels(job.request.model, deployment.name).observe(
                time.perf_counter() - started
            )

    def _stream_once(
        self, job: ChatJob, endpoint: Endpoint, model: str, publisher: DeltaPublisher
    ) -> ProviderReply:
        publisher.new_attempt()
        state = StreamState()
        body = job.request.provider_body(stream=True, model=model)
        for piece in self.provider.stream(endpoint, body, job_id=job.id, state=state):
            publisher.feed(piece)
        return ProviderReply(
            content=publisher.published,
            finish_reason=state.finish_reason,
            usage=state.usage,
            model=state.model,
            exhausted_for=state.exhausted_for,
        )
