"""The micro-batch path of ``ChatRunner``: jobs gathered by ``workers.batching`` are claimed
together and answered by one provider call asking for one choice per job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from shared.errors import ChatqError, ProviderRejected
from shared.jobs import ChatJob, ChatResult, Timings
from workers.batching import Outcome, batch_key
from workers.hooks import Turn
from workers.limiter import Deferred, Lease
from workers.results import choice_result, failed_result

if TYPE_CHECKING:
    from shared.deployments import Deployment
    from workers.chat import ChatRunner

log = logging.getLogger("chatq.worker")


class MicroBatchCalls:
    """Mixed into ``ChatRunner``; uses its collaborators and its single-job steps."""

    def _batch_for(self: ChatRunner, job: ChatJob) -> ChatResult | None:
        """Runs the job in a micro-batch if it may share a multi-choice call; else returns
        None and leaves it alone."""
        if self.batcher is None or (key := batch_key(job.request)) is None:
            return None
        try:
            max_n = max(d.max_n for d in self.deployments.for_alias(job.request.model))
        except ChatqError:
            return None
        if max_n < 2:
            return None
        return self.batcher.submit(key, job, limit=max_n)

    def _run_batch(self: ChatRunner, jobs: list[ChatJob]) -> dict[str, Outcome[ChatResult | None]]:
        """Claims a micro-batch's jobs and answers them with one call of ``n`` choices."""
        outcomes: dict[str, Outcome[ChatResult | None]] = {}
        deployments = self.deployments.for_alias(jobs[0].request.model)
        deployment = self.health.choose(deployments, avoid=set())
        jobs = jobs[: deployment.max_n]  # the others were gathered for a bigger deployment
        lease = self._book(
            jobs[0], deployment, max_wait_s=self.max_inline_wait_s, choices=len(jobs)
        )
        if isinstance(lease, float):
            return {job.id: Deferred(lease) for job in jobs}
        claimed: list[tuple[ChatJob, int]] = []
        try:
            for job in jobs:
                try:
                    started = self._claim(job)
                except Deferred as deferred:
                    outcomes[job.id] = deferred
                    continue
                if started is None:
                    outcomes[job.id] = None
                else:
                    claimed.append((job, started))
            if not claimed:
                self.limiter.settle(lease, 0)
                return outcomes
            return self._answer_batch(claimed, deployments, deployment, lease, outcomes)
        finally:  # whatever happened, this thread no longer holds their claims
            for job, _ in claimed:
                self.running.discard(job.id)

    def _answer_batch(
        self: ChatRunner,
        claimed: list[tuple[ChatJob, int]],
        deployments: list[Deployment],
        deployment: Deployment,
        lease: Lease,
        outcomes: dict[str, Outcome[ChatResult | None]],
    ) -> dict[str, Outcome[ChatResult | None]]:
        """Makes the multi-choice call for the claimed jobs and ends each of them."""
        timings = [
            Timings(created_at=job.created_at, started_at=self.clock()) for job, _ in claimed
        ]
        lead, lead_started = claimed[0]
        turn = Turn(lead, lead.request, deployments)  # the jobs' requests are identical
        try:
            answered = self.hooks.before(turn)
            if answered is not None:
                self.limiter.settle(lease, 0)
                for (job, started), timing in zip(claimed, timings, strict=True):
                    result = self._hook_answer(job, answered, timing, started)
                    outcomes[job.id] = self._end(job, result, attempts=started)
                return outcomes
            sent = lead.model_copy(update={"request": turn.request})
            reply = self._call_with_retries(
                sent, deployments, deployment, lease, lead_started, timings[0], choices=len(claimed)
            )
        except ProviderRejected as exc:
            if len(claimed) == 1:
                return {
                    **outcomes,
                    lead.id: self._end(
                        lead,
                        failed_result(lead, exc, timings[0], lead_started),
                        attempts=lead_started,
                    ),
                }
            log.warning("multi-choice call rejected (%s); sending the jobs one by one", exc.message)
            reply = None
        except ChatqError as exc:
            reply = exc
        except Exception as exc:
            log.exception("micro-batch of %d failed unexpectedly", len(claimed))
            reply = ChatqError(f"Internal worker error: {exc}")
        for i, ((job, started), timing) in enumerate(zip(claimed, timings, strict=True)):
            if isinstance(reply, ChatqError):
                outcomes[job.id] = self._end(
                    job, failed_result(job, reply, timing, started), attempts=started
                )
            elif reply is None or i >= len(reply.choices):  # the provider ignored 'n'
                outcomes[job.id] = capture(partial(self._run_call, job, started=started))
            else:
                result = choice_result(job, reply, i, len(claimed), timing, started)
                if i == 0 and self.coalescer is not None and reply.usage is not None:
                    saved = reply.usage.prompt_tokens * (len(claimed) - 1) // len(claimed)
                    self.coalescer.record_saving(saved)
                result.content = self.hooks.after(turn, result.content or "")
                outcomes[job.id] = self._end(job, result, attempts=started)
        return outcomes


def capture(run: Callable[[], ChatResult | None]) -> Outcome[ChatResult | None]:
    """What ``run`` returns, or the exception it raises, for another thread to raise."""
    try:
        return run()
    except Exception as exc:
        return exc
