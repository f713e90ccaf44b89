"""Identical sampled jobs gathered by ``chatq.workers.gathering`` are claimed together and answered
by one provider call asking for one choice per job; each job gets its own choice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from chatq.shared.completion import Completion
from chatq.shared.errors import ChatqError, ProviderRejected
from chatq.shared.jobs import ChatJob, ChatResult, Timings
from chatq.shared.store import Claimed
from chatq.workers.coalesce import Coalescer
from chatq.workers.gathering import Gatherer, Outcome, gather_key
from chatq.workers.hooks import HookChain, Turn
from chatq.workers.lifecycle import JobLifecycle
from chatq.workers.limiter import Deferred, Lease
from chatq.workers.provider_call import ProviderCalls, Route
from chatq.workers.results import failed_result, gathered_result, hook_answer
from chatq.workers.sharing import OwnCall

log = logging.getLogger("chatq.worker")

Outcomes = dict[str, Outcome[ChatResult | None]]


class GatheredCalls:
    def __init__(
        self,
        calls: ProviderCalls,
        lifecycle: JobLifecycle,
        hooks: HookChain,
        own_call: OwnCall,
        *,
        clock: Callable[[], float],
        window_s: float,
        max_size: int,
        coalescer: Coalescer | None = None,
    ):
        self.calls = calls
        self.lifecycle = lifecycle
        self.hooks = hooks
        self.own_call = own_call
        self.clock = clock
        self.coalescer = coalescer  # counts the prompt tokens a gathered call saved
        self.gatherer: Gatherer[ChatJob, ChatResult | None] = Gatherer(
            self._run_group, window_s=window_s, max_size=max_size
        )

    def key_for(self, job: ChatJob) -> str | None:
        """The key of the jobs this one may share a multi-choice call with, or None."""
        if (key := gather_key(job.request)) is None:
            return None
        try:
            max_n = max(d.max_n for d in self.calls.registry.for_alias(job.request.model))
        except ChatqError:
            return None
        return key if max_n >= 2 else None

    def run(self, job: ChatJob, key: str) -> ChatResult | None:
        """The job's result, from the call it shares with the jobs gathered with it."""
        limit = max(d.max_n for d in self.calls.registry.for_alias(job.request.model))
        return self.gatherer.submit(key, job, limit=limit)

    def _run_group(self, jobs: list[ChatJob]) -> Outcomes:
        """Claims a gathering's jobs and answers them with one call of ``n`` choices."""
        try:
            route = self.calls.route(jobs[0])
        except ChatqError:  # the model is gone: each job's own call ends it, saying why
            return {job.id: _capture(partial(self.own_call, job, None, None)) for job in jobs}
        size = route.first.max_n  # the others were gathered for a bigger deployment
        outcomes: Outcomes = {
            job.id: _capture(partial(self.own_call, job, None, None)) for job in jobs[size:]
        }
        jobs = jobs[:size]
        try:
            lease = self.calls.book(jobs[0], route.first, choices=len(jobs))
        except Deferred as deferred:
            return {**outcomes, **{job.id: deferred for job in jobs}}
        claimed, refused = self.lifecycle.claim_each(jobs)
        outcomes.update(refused)
        try:
            if not claimed:
                self.calls.release(lease)
                return outcomes
            return self._answer(claimed, route, lease, outcomes)
        finally:  # whatever happened, this thread no longer holds their claims
            self.lifecycle.release_all(job.id for job, _ in claimed)

    def _answer(
        self,
        claimed: list[tuple[ChatJob, Claimed]],
        route: Route,
        lease: Lease,
        outcomes: Outcomes,
    ) -> Outcomes:
        """Makes the multi-choice call for the claimed jobs and ends each of them."""
        timings = [
            Timings(created_at=job.created_at, started_at=self.clock()) for job, _ in claimed
        ]
        lead = claimed[0][0]
        turn = Turn(lead, lead.request, route.deployments)  # the jobs' requests are identical
        answer: Completion | None = None
        failure: ChatqError | None = None
        try:
            answered = self.hooks.before(turn)
            if answered is not None:
                self.calls.release(lease)
                for (job, claim), timing in zip(claimed, timings, strict=True):
                    result = hook_answer(job, answered, timing, claim.attempt)
                    outcomes[job.id] = self.lifecycle.end(job, result)
                return outcomes
            sent = lead.model_copy(update={"request": turn.request})
            answer = self.calls.answer(sent, route, lease, choices=len(claimed))
        except ProviderRejected as exc:
            if len(claimed) == 1:
                failure = exc
            else:
                log.warning("multi-choice call rejected (%s); sending the jobs one by one", exc)
        except ChatqError as exc:
            failure = exc
        except Exception as exc:
            log.exception("gathered call of %d failed unexpectedly", len(claimed))
            failure = ChatqError(f"Internal worker error: {exc}")
        for i, ((job, claim), timing) in enumerate(zip(claimed, timings, strict=True)):
            if failure is not None:
                result = failed_result(job, failure, timing, claim.attempt)
                outcomes[job.id] = self.lifecycle.end(job, result)
            elif answer is None or i >= len(answer.choices):  # the provider ignored 'n'
                outcomes[job.id] = _capture(partial(self.own_call, job, claim, None))
            else:
                result = gathered_result(job, answer, i, len(claimed), timing, claim.attempt)
                if i == 0:
                    self._record_saving(answer, len(claimed))
                if result.completion is not None:
                    result.completion = self.hooks.after(turn, result.completion)
                outcomes[job.id] = self.lifecycle.end(job, result)
        return outcomes

    def _record_saving(self, answer: Completion, size: int) -> None:
        if self.coalescer is not None and answer.usage is not None:
            self.coalescer.record_saving(answer.usage.prompt_tokens * (size - 1) // size)


def _capture(run: Callable[[], ChatResult | None]) -> Outcome[ChatResult | None]:
    """What ``run`` returns, or the exception it raises, for another thread to raise."""
    try:
        return run()
    except Exception as exc:
        return exc
