"""Identical requests, one provider call: the job that finds no call in flight leads (makes
its own call, whose answer is then cached); the others follow it, copying its stream and its
answer, or take a cached answer at once. ``chatq.workers.coalesce`` keeps the shared state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chatq.shared import tracing
from chatq.shared.completion import chunks_of
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.errors import ChatqError, JobTimeout
from chatq.shared.jobs import ChatJob, ChatResult, JobStatus, Timings
from chatq.shared.protocol import DeltaEvent, EndEvent
from chatq.shared.scripts import ScriptCall, chain
from chatq.shared.store import Claimed, JobStore
from chatq.workers.coalesce import Coalescer, Decision, embedding_key, request_key
from chatq.workers.lifecycle import JobLifecycle, Sharing
from chatq.workers.limiter import Deferred
from chatq.workers.streaming import ChunkPublisher
from opentelemetry.trace import get_current_span

log = logging.getLogger("chatq.worker")

# Makes the job's own provider call and ends it: the runner's direct path. Given the claim if
# the job holds one already, and the key of the call it leads, if it leads one.
OwnCall = Callable[[ChatJob, Claimed | None, str | None], ChatResult | None]


class SharedAnswers:
    def __init__(
        self,
        coalescer: Coalescer,
        lifecycle: JobLifecycle,
        registry: DeploymentRegistry,
        *,
        clock: Callable[[], float],
        follow_timeout_s: float,
    ):
        self.coalescer = coalescer
        self.lifecycle = lifecycle
        self.store: JobStore = lifecycle.store
        self.registry = registry
        self.clock = clock
        self.follow_timeout_s = follow_timeout_s

    def key_for(self, job: ChatJob) -> str | None:
        """The key the job shares its answer under, or None if it must not share."""
        if job.embedding is not None:
            return embedding_key(job)
        return request_key(job.request)

    def run(self, job: ChatJob, key: str, own_call: OwnCall) -> ChatResult | None:
        """The job's result, by leading, following or the cache; None if it had ended."""
        decision, reply = self._join(key, job)
        claimed: Claimed | None = None
        if reply is not None:
            try:
                claimed = self.lifecycle.claimed(job, reply)
            except Deferred:
                if decision.kind == "lead":
                    self.coalescer.free(key, job.id)
                raise
            if claimed is None:
                if decision.kind == "lead":
                    self.coalescer.free(key, job.id)
                return None
        if decision.kind == "lead":  # ending the job frees the key and caches the answer
            return self._lead(job, key, claimed, own_call)
        self._traced(decision)
        if claimed is None:
            claimed = self.lifecycle.claim(job)
        if claimed is None:
            return None
        try:
            timings = Timings(created_at=job.created_at, started_at=self.clock())
            if decision.kind == "cached" and decision.cached is not None:
                cached = decision.cached.model_copy(update={"cached": True})
                result = self._share(job, cached, timings, claimed, published=False)
            else:
                result = self._follow(job, decision.leader or "", timings, claimed)
            if result is None:  # the leader did not get an answer: try on our own
                return own_call(job, claimed, None)
            self.coalescer.record_saving(result.usage.total_tokens if result.usage else 0)
            return self.lifecycle.end(job, result)
        finally:
            self.lifecycle.release(job.id)

    def _traced(self, decision: Decision) -> None:
        """The run's span links to the trace of the call it shares (tracing on only)."""
        run = get_current_span()
        if not run.is_recording():
            return
        cached = decision.cached
        leader = cached.job_id if cached is not None else decision.leader
        run.set_attribute("chatq.shared", decision.kind)
        if leader:
            run.set_attribute("chatq.shared_from", leader)
            if (context := tracing.span_context(self.store.trace_of(leader))) is not None:
                run.add_link(context)

    def ending(self, job: ChatJob, key: str, result: ChatResult) -> Sharing:
        """How a leader's end leaves the shared state: key freed, answer cached if done."""
        if not job.request.cache:
            return Sharing(key)
        if result.status is JobStatus.done:
            self.coalescer.remember(key, result)
        return Sharing(key, self.coalescer.cache_ttl_s)

    def _lead(
        self, job: ChatJob, key: str, claimed: Claimed | None, own_call: OwnCall
    ) -> ChatResult | None:
        try:
            result = own_call(job, claimed, key)
        except BaseException:
            self.lifecycle.release(job.id)  # first: freeing the key may fail too
            self.coalescer.free(key, job.id)
            raise
        if result is None:
            self.coalescer.free(key, job.id)
        return result

    def _join(self, key: str, job: ChatJob) -> tuple[Decision, Any]:
        """The job's coalescing decision, and (unless None) the reply of its claim.

        Where no rate limit can make the job wait, there is no reason to join before
        claiming, and both go to Redis in one script call.
        """
        use_cache = job.request.cache
        if not self._never_waits(job) or (use_cache and self.coalescer.has_local(key)):
            return self.coalescer.join(key, job.id, use_cache=use_cache), None
        join = self.coalescer.join_call(key, job.id, use_cache=use_cache)
        source, script_keys, args = chain([join, self.lifecycle.claim_call(job)])
        joined, reply = self.store.send_command(ScriptCall(source, script_keys, args))
        return self.coalescer.decision(key, joined), reply

    def _never_waits(self, job: ChatJob) -> bool:
        """Whether every deployment of the job's model is free of rate limits."""
        try:
            deployments = self.registry.for_alias(job.request.model)
        except ChatqError:
            return False
        return all(
            d.rpm is None and d.tpm is None and d.max_concurrency is None for d in deployments
        )

    def _follow(
        self, job: ChatJob, leader: str, timings: Timings, claimed: Claimed
    ) -> ChatResult | None:
        """Copies the leader's chunks, as they come, and its answer into this job; None if
        the leader failed or gave nothing in time (the job then makes its own call)."""
        publisher = ChunkPublisher(self.store, self.clock, job.id, timings)
        try:
            for event in self.store.events(leader, timeout=self.follow_timeout_s):
                if isinstance(event, DeltaEvent):
                    if job.request.stream:
                        publisher.publish(event.chunk)
                elif isinstance(event, EndEvent):
                    if event.result.status is not JobStatus.done:
                        return None
                    shared = event.result.model_copy(update={"coalesced_with": leader})
                    return self._share(job, shared, timings, claimed, published=publisher.published)
        except JobTimeout:
            log.warning("job %s: leader %s gave no answer in time", job.id, leader)
        return None

    def _share(
        self,
        job: ChatJob,
        answer: ChatResult,
        timings: Timings,
        claimed: Claimed,
        *,
        published: bool,
    ) -> ChatResult:
        """This job's result from an answer another job paid for."""
        if job.request.stream and not published and answer.completion is not None:
            ChunkPublisher(self.store, self.clock, job.id, timings).publish_all(
                chunks_of(answer.completion)
            )
        return answer.model_copy(
            update={
                "job_id": job.id,
                "model": job.request.model,
                "timings": timings,
                "attempts": claimed.attempt,
            }
        )
