"""Runs one chat job to its end: shared with identical requests, gathered with similar ones,
or on its own call; each concern is a collaborator's:

- ``JobLifecycle``: the claim, its renewal, the one end (and who hears of it);
- ``ProviderCalls``: the slot under the limits, the call, retries and fallbacks;
- ``SharedAnswers``: following an identical request's call, or the cache;
- ``GatheredCalls``: one multi-choice call for identical sampled requests;
- ``GatheredEmbeddings``: one call for the inputs of embeddings requests that arrive together;
- ``HookChain``: what hooks do to the request and the answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chatq.shared.completion import chunks_of, text_completion
from chatq.shared.errors import ChatqError, JobCancelled
from chatq.shared.jobs import ChatJob, ChatResult, Timings
from chatq.shared.outage import REDIS_DOWN
from chatq.shared.store import Claimed
from chatq.workers.gathered_calls import GatheredCalls
from chatq.workers.gathered_embeddings import GatheredEmbeddings
from chatq.workers.hooks import HookChain, Turn
from chatq.workers.lifecycle import JobLifecycle
from chatq.workers.limiter import Deferred, Lease
from chatq.workers.provider_call import ProviderCalls, Route
from chatq.workers.results import (
    cancelled_mid_call,
    deadline_result,
    done_result,
    failed_result,
    hook_answer,
)
from chatq.workers.sharing import SharedAnswers
from chatq.workers.streamed_answer import StreamedAnswer
from chatq.workers.streaming import ChunkPublisher, StreamRelay

log = logging.getLogger("chatq.worker")


class ChatRunner:
    def __init__(
        self,
        lifecycle: JobLifecycle,
        calls: ProviderCalls,
        *,
        hooks: HookChain | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.lifecycle = lifecycle
        self.calls = calls
        self.hooks = hooks or HookChain()
        self.clock = clock
        self.sharing: SharedAnswers | None = None
        self.gathered: GatheredCalls | None = None
        self.embeddings: GatheredEmbeddings | None = None

    def run(self, job: ChatJob) -> ChatResult | None:
        """Executes the job; None if it had already ended (a redelivery, or a cancel).

        Raises ``Deferred`` before claiming the job if it cannot be sent soon.
        """
        deadline = job.deadline
        if deadline is not None and self.clock() > deadline:
            return self.lifecycle.end(job, deadline_result(job, self.clock()))
        call = self.own_call
        if job.embedding is not None and self.embeddings is not None:
            call = self.embeddings.run  # its call may carry other requests' inputs too
        if self.sharing is not None and (key := self.sharing.key_for(job)) is not None:
            return self.sharing.run(job, key, call)
        if self.gathered is not None and (key := self.gathered.key_for(job)) is not None:
            return self.gathered.run(job, key)
        return call(job, None, None)

    def own_call(
        self, job: ChatJob, claimed: Claimed | None, share_key: str | None
    ) -> ChatResult | None:
        """Makes the job's own provider call (claiming the job first, unless ``claimed``) and
        ends it; ``share_key`` is the key of the call it leads for identical requests."""
        try:
            route = self.calls.route(job)
        except ChatqError as exc:  # no deployment serves its model now
            return self._unroutable(job, claimed, exc)
        lease = self._slot(job, route, claimed)
        if claimed is None:
            try:
                claimed = self.lifecycle.claim(job)
            except Deferred:
                self.calls.release(lease)
                raise
            if claimed is None:
                self.calls.release(lease)
                return None
        timings = Timings(created_at=job.created_at, started_at=self.clock())
        streamed: list[StreamRelay] = []  # the job's stream, once made: what it had so far
        aborts = self.calls.provider.aborts
        if job.deadline is not None:  # passed mid-call, the call is stopped
            aborts.expire_at(job.id, job.deadline)
        try:
            result = self._answer(job, route, lease, claimed, timings, streamed)
        except JobCancelled as exc:  # its call was stopped: cancelled, with what it used
            log.info("job %s: %s", job.id, exc.message)
            answer = streamed[0].answer if streamed else None
            result = cancelled_mid_call(job, exc, timings, answer, self.clock())
        except ChatqError as exc:
            log.warning("job %s failed: %s", job.id, exc.message)
            result = failed_result(job, exc, timings, claimed.attempt)
        except REDIS_DOWN as exc:  # cut off from Redis mid-job: not the job's failure
            log.warning(
                "job %s: redis unreachable before its answer (%s); left to run again once "
                "its claim lapses",
                job.id,
                exc,
            )
            return None
        except Exception as exc:  # a bug must still end the job, with a reason
            log.exception("job %s failed unexpectedly", job.id)
            internal = ChatqError(f"Internal worker error: {exc}")
            result = failed_result(job, internal, timings, claimed.attempt)
        finally:
            self.lifecycle.release(job.id)
            if job.deadline is not None:
                aborts.forget(job.id)
        return self.end(job, result, share_key)

    def end(self, job: ChatJob, result: ChatResult, share_key: str | None) -> ChatResult:
        """Records the job's end; if it led identical requests (``share_key``), frees them
        its key and caches its answer."""
        sharing = None
        if share_key is not None and self.sharing is not None:
            sharing = self.sharing.ending(job, share_key, result)
        return self.lifecycle.end(job, result, sharing=sharing)

    def _unroutable(
        self, job: ChatJob, claimed: Claimed | None, error: ChatqError
    ) -> ChatResult | None:
        """Ends a job whose model no deployment serves, saying so."""
        claimed = claimed or self.lifecycle.claim(job)
        if claimed is None:
            return None
        timings = Timings(created_at=job.created_at, started_at=self.clock())
        return self.lifecycle.end(job, failed_result(job, error, timings, claimed.attempt))

    def _slot(self, job: ChatJob, route: Route, claimed: Claimed | None) -> Lease:
        """A slot for the call; a job not yet claimed goes back to the queue if it is far."""
        try:
            return self.calls.book(job, route.first)
        except Deferred:
            if claimed is None:
                raise
            return self.calls.wait_for_slot(job, route.first)  # already claimed: wait here

    def _answer(
        self,
        job: ChatJob,
        route: Route,
        lease: Lease,
        claimed: Claimed,
        timings: Timings,
        streamed: list[StreamRelay],
    ) -> ChatResult:
        if job.embedding is not None:  # vectors of the inputs as given: no hook rewrites them
            completion = self.calls.answer(job, route, lease)
            return done_result(job, completion, timings, claimed.attempt)
        turn = Turn(job, job.request, route.deployments)
        answered = self.hooks.before(turn)
        if answered is not None:
            self.calls.release(lease)
            if job.request.stream:
                publisher = ChunkPublisher(self.lifecycle.store, self.clock, job.id, timings)
                publisher.publish_all(chunks_of(text_completion(answered.text)))
            return hook_answer(job, answered, timings, claimed.attempt)
        sent = job.model_copy(update={"request": turn.request})
        relay = self._relay(job, timings, turn) if job.request.stream else None
        if relay is not None:
            streamed.append(relay)
        completion = self.calls.answer(sent, route, lease, relay)
        return done_result(job, self.hooks.after(turn, completion), timings, claimed.attempt)

    def _relay(self, job: ChatJob, timings: Timings, turn: Turn) -> StreamRelay:
        """The job's stream; it resumes after chunks consumers may have already: from a dead
        worker's try, or a failed leader's."""
        store = self.lifecycle.store
        published = StreamedAnswer()
        for chunk in store.published_chunks(job.id):
            published.add(chunk)
        publisher = ChunkPublisher(
            store, self.clock, job.id, timings, published=not published.empty
        )
        return StreamRelay(publisher, self.hooks.stream(turn), published)
