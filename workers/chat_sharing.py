"""The sharing path of ``ChatRunner``: joining identical requests in flight (and the cache),
then following a leader's call or taking a cached answer instead of calling."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.errors import ChatqError, JobTimeout
from shared.jobs import ChatJob, ChatResult, JobStatus, Timings
from shared.protocol import DeltaEvent, EndEvent
from shared.scripts import ScriptCall, chain
from workers.coalesce import Decision

if TYPE_CHECKING:
    from workers.chat import ChatRunner

log = logging.getLogger("chatq.worker")


class SharedAnswers:
    """Mixed into ``ChatRunner``; uses its store, coalescer and claim."""

    def _join(self: ChatRunner, key: str, job: ChatJob) -> tuple[Decision, Any]:
        """The job's coalescing decision, and (unless None) the reply of its claim.

        Where no rate limit can make the job wait, there is no reason to join before
        claiming, and both go to Redis in one script call.
        """
        assert self.coalescer is not None
        use_cache = job.request.cache
        if not self._never_waits(job) or (use_cache and self.coalescer.has_local(key)):
            return self.coalescer.join(key, job.id, use_cache=use_cache), None
        join = self.coalescer.join_call(key, job.id, use_cache=use_cache)
        claim = self.store.claim_call(job, lease_s=self.lease_s, worker=self.worker_name)
        joined, claimed = self._join_and_claim(join, claim)
        return self.coalescer.decision(key, joined), claimed

    def _join_and_claim(self: ChatRunner, join: ScriptCall, claim: ScriptCall) -> list[Any]:
        source, script_keys, args = chain([join, claim])
        script = self.scripts.get(source)
        if script is None:
            script = self.scripts.setdefault(source, self.store.redis.register_script(source))
        return script(keys=script_keys, args=args)

    def _never_waits(self: ChatRunner, job: ChatJob) -> bool:
        """Whether every deployment of the job's model is free of rate limits."""
        try:
            deployments = self.deployments.for_alias(job.request.model)
        except ChatqError:
            return False
        return all(
            d.rpm is None and d.tpm is None and d.max_concurrency is None for d in deployments
        )

    def _follow(
        self: ChatRunner, job: ChatJob, leader: str, timings: Timings, started: int
    ) -> ChatResult | None:
        """Copies the leader's deltas, as they come, and its answer into this job; None if the
        leader failed or gave nothing in time (the job then makes its own call)."""
        published = False
        try:
            for event in self.store.events(leader, timeout=self.follow_timeout_s):
                if isinstance(event, DeltaEvent):
                    if job.request.stream:
                        if not published:
                            timings.first_token_at = self.clock()
                        self.store.append_delta(job.id, event.content, first=not published)
                        published = True
                elif isinstance(event, EndEvent):
                    if event.result.status is not JobStatus.done:
                        return None
                    shared = event.result.model_copy(update={"coalesced_with": leader})
                    return self._share(job, shared, timings, started, published=published)
        except JobTimeout:
            log.warning("job %s: leader %s gave no answer in time", job.id, leader)
        return None

    def _share(
        self: ChatRunner,
        job: ChatJob,
        answer: ChatResult,
        timings: Timings,
        started: int,
        *,
        published: bool,
    ) -> ChatResult:
        """This job's result from an answer another job paid for."""
        if job.request.stream and not published and answer.content:
            timings.first_token_at = self.clock()
            self.store.append_delta(job.id, answer.content, first=True)
        return answer.model_copy(
            update={
                "job_id": job.id,
                "model": job.request.model,
                "timings": timings,
                "attempts": started,
            }
        )
