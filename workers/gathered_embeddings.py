"""Embeddings requests for one model that arrive within a few milliseconds of each other go to
the provider as one call, their inputs in one ``input`` list (up to the deployment's
``max_inputs``); each job gets its own vectors back and its share of the tokens.

A gathered call books one slot of the limits and is tried again, or on another deployment, as
any call. It runs under an id of its own: one job's cancel does not stop it (the others need
its answer; the cancelled job has ended already), and the first deadline among its jobs
does, after which the jobs whose deadline has not passed ask alone, as they do when the
provider refuses the list.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial

from chatq.shared.completion import Completion, Usage
from chatq.shared.deployments import MAX_INPUTS
from chatq.shared.errors import ChatqError, JobCancelled, ProviderRejected, ProviderUnavailable
from chatq.shared.jobs import ChatJob, ChatResult, Timings
from chatq.shared.outage import REDIS_DOWN
from chatq.shared.store import Claimed
from chatq.shared.tokens import count_text_tokens
from chatq.workers.gathering import Gatherer, Outcome
from chatq.workers.lifecycle import JobLifecycle
from chatq.workers.limiter import Deferred, Lease
from chatq.workers.provider_call import ProviderCalls, Route
from chatq.workers.results import cancelled_mid_call, done_result, failed_result
from chatq.workers.sharing import OwnCall

log = logging.getLogger("chatq.worker")

MAX_CALL_TOKENS = 100_000  # estimated tokens one gathered call may carry (OpenAI takes 300,000)

# Records a job's end, its shared answer included where it leads identical requests (by key).
EndJob = Callable[[ChatJob, ChatResult, str | None], ChatResult | None]
Outcomes = dict[str, Outcome[ChatResult | None]]


class UnsplitAnswer(ProviderUnavailable):
    """A gathered call's answer that is not one vector per input."""


@dataclass(frozen=True)
class Member:
    """A job in a gathering: its claim if it holds one already, and the key of the
    identical requests it leads, if it leads any."""

    job: ChatJob
    claimed: Claimed | None
    share_key: str | None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def inputs(self) -> int:
        return len(self.job.embedding.input) if self.job.embedding else 0

    @cached_property
    def tokens(self) -> int:  # counted once: a call's limits and its split both read it
        return input_tokens(self.job)


def input_tokens(job: ChatJob) -> int:
    """The estimated tokens of an embeddings job's inputs (a token array: its length)."""
    items = job.embedding.input if job.embedding else []
    return sum(len(i) if isinstance(i, list) else count_text_tokens(i) for i in items)


class GatheredEmbeddings:
    def __init__(
        self,
        calls: ProviderCalls,
        lifecycle: JobLifecycle,
        own_call: OwnCall,
        end: EndJob,
        *,
        clock: Callable[[], float],
        window_s: float,
    ):
        self.calls = calls
        self.lifecycle = lifecycle
        self.own_call = own_call
        self.end = end
        self.clock = clock
        self.gatherer: Gatherer[Member, ChatResult | None] = Gatherer(
            self._run_group, window_s=window_s, max_size=MAX_INPUTS
        )

    def capacity(self, job: ChatJob) -> int:
        """The most inputs one call to the job's model may carry (1: each request alone)."""
        try:
            return max(d.max_inputs for d in self.calls.registry.for_alias(job.request.model))
        except ChatqError:
            return 1

    def run(
        self, job: ChatJob, claimed: Claimed | None, share_key: str | None
    ) -> ChatResult | None:
        """The job's result, from a call it shares with the requests gathered with it (as
        ``OwnCall``: given its claim if it holds one, and the key it leads)."""
        if job.embedding is None or (limit := self.capacity(job)) < 2:
            return self.own_call(job, claimed, share_key)
        member = Member(job, claimed, share_key)
        kind = "tokens" if isinstance(job.embedding.input[0], list) else "text"
        key = f"{job.request.model}\0{job.embedding.dimensions}\0{kind}"
        return self.gatherer.submit(key, member, limit=limit, size=_size(member, limit))

    def _run_group(self, members: list[Member]) -> Outcomes:
        """Claims the gathering's jobs and answers them with one call."""
        try:
            route = self.calls.route(members[0].job)
        except ChatqError:  # the model is gone: each job's own call ends it, saying why
            return self._alone(members)
        together = _fitting(members, route.first.max_inputs)
        rest = members[len(together) :]  # gathered for a bigger deployment: each alone
        if len(together) < 2:
            return self._alone(members)
        return {**self._together(together, route), **self._alone(rest)}

    def _together(self, together: list[Member], route: Route) -> Outcomes:
        """Books one slot for the members, claims them and answers them with one call."""
        group = combined(together)
        try:
            lease = self.calls.book(group, route.first)
        except Deferred as deferred:  # a job already claimed waits for a slot of its own
            return {
                m.id: deferred if m.claimed is None else self._alone([m])[m.id] for m in together
            }
        outcomes: Outcomes = {}
        held = {m.id: m.claimed for m in together if m.claimed is not None}
        jobs, refused = self.lifecycle.claim_each((m.job for m in together), held)
        outcomes.update(refused)
        by_id = {m.id: m for m in together}
        claimed = [(by_id[job.id], claim) for job, claim in jobs]
        try:
            if len(claimed) < 2:
                self.calls.release(lease)
                return {**outcomes, **self._alone([m for m, _ in claimed], claimed)}
            if len(claimed) < len(together):  # the call carries the claimed jobs' inputs only
                group = combined([m for m, _ in claimed])
            return {**outcomes, **self._answer(group, claimed, route, lease)}
        finally:  # whatever happened, this thread no longer holds their claims
            self.lifecycle.release_all(member.id for member, _ in claimed)

    def _answer(
        self, group: ChatJob, claimed: list[tuple[Member, Claimed]], route: Route, lease: Lease
    ) -> Outcomes:
        """Makes the one call (``group``) for the claimed jobs and ends each of them."""
        members = [member for member, _ in claimed]
        started = self.clock()
        timings = {m.id: Timings(created_at=m.job.created_at, started_at=started) for m in members}
        aborts = self.calls.provider.aborts
        deadlines = [m.job.deadline for m in members if m.job.deadline is not None]
        if deadlines:  # the first to pass stops the call
            aborts.expire_at(group.id, min(deadlines))
        outcomes: Outcomes = {}
        try:
            answer = self.calls.answer(group, route, lease)
            parts = split(answer, members)
        except JobCancelled as exc:
            return self._stopped(claimed, exc, timings)
        except (ProviderRejected, UnsplitAnswer) as exc:
            log.warning(
                "embeddings of %d requests refused together (%s); asking alone", len(members), exc
            )
            return self._alone(members, claimed)
        except REDIS_DOWN as exc:
            log.warning("embeddings call cut off from redis (%s); left to run again", exc)
            return {m.id: None for m in members}
        except ChatqError as exc:
            return {
                m.id: self._end(m, failed_result(m.job, exc, timings[m.id], c.attempt))
                for m, c in claimed
            }
        except Exception as exc:
            log.exception("gathered embeddings call of %d failed unexpectedly", len(members))
            internal = ChatqError(f"Internal worker error: {exc}")
            return {
                m.id: self._end(m, failed_result(m.job, internal, timings[m.id], c.attempt))
                for m, c in claimed
            }
        finally:
            if deadlines:
                aborts.forget(group.id)
        for (member, claim), part in zip(claimed, parts, strict=True):
            result = done_result(member.job, part, timings[member.id], claim.attempt)
            result.gathered = len(members)
            outcomes[member.id] = self._end(member, result)
        return outcomes

    def _stopped(
        self,
        claimed: list[tuple[Member, Claimed]],
        stop: JobCancelled,
        timings: dict[str, Timings],
    ) -> Outcomes:
        """A call stopped by a deadline: the jobs whose deadline passed end cancelled, and
        the others ask alone."""
        now = self.clock()
        outcomes: Outcomes = {}
        rest: list[tuple[Member, Claimed]] = []
        for member, claim in claimed:
            deadline = member.job.deadline
            if deadline is not None and deadline <= now:
                result = cancelled_mid_call(member.job, stop, timings[member.id], None, now)
                outcomes[member.id] = self._end(member, result)
            else:
                rest.append((member, claim))
        return {**outcomes, **self._alone([m for m, _ in rest], rest)}

    def _alone(
        self, members: list[Member], claimed: list[tuple[Member, Claimed]] | None = None
    ) -> Outcomes:
        """Each job's own call (with the claim it holds)."""
        claims = {m.id: c for m, c in claimed or ()}
        return {
            m.id: _capture(partial(self.own_call, m.job, claims.get(m.id, m.claimed), m.share_key))
            for m in members
        }

    def _end(self, member: Member, result: ChatResult) -> ChatResult | None:
        return self.end(member.job, result, member.share_key)


def _size(member: Member, limit: int) -> int:
    """The member's part of a call of ``limit`` inputs: its inputs, or more if its tokens
    fill more of ``MAX_CALL_TOKENS``."""
    return max(member.inputs, math.ceil(member.tokens * limit / MAX_CALL_TOKENS))


def _fitting(members: list[Member], max_inputs: int) -> list[Member]:
    """The first members whose inputs and tokens fit one call to this deployment."""
    inputs = tokens = 0
    for count, member in enumerate(members):
        inputs += member.inputs
        tokens += member.tokens
        if inputs > max_inputs or tokens > MAX_CALL_TOKENS:
            return members[:count]
    return members


def combined(members: list[Member]) -> ChatJob:
    """One job carrying every member's inputs in order, under an id of its own, with their
    stand-in prompts for the limiter's estimate."""
    lead = members[0].job
    assert lead.embedding is not None
    inputs = [item for m in members for item in (m.job.embedding.input if m.job.embedding else ())]
    messages = [message for m in members for message in m.job.request.messages]
    return lead.model_copy(
        update={
            "id": f"gathered_{secrets.token_hex(12)}",
            "embedding": lead.embedding.model_copy(update={"input": inputs}),
            "request": lead.request.model_copy(update={"messages": messages}),
        }
    )


def split(answer: Completion, members: list[Member]) -> list[Completion]:
    """Each member's part of a gathered call's answer: its vectors, indexed from 0, and its
    share of the tokens by its inputs' estimate. ``UnsplitAnswer`` if the provider sent
    back other than one vector per input."""
    extra = answer.model_extra or {}
    data = sorted(extra.get("data") or (), key=lambda item: item.get("index", 0))
    if [item.get("index") for item in data] != list(range(sum(m.inputs for m in members))):
        raise UnsplitAnswer("Provider sent other than one vector per input")
    billed = answer.usage.prompt_tokens if answer.usage is not None else 0
    estimates = [max(1, m.tokens) for m in members]
    shares = _apportioned(billed, estimates)
    parts: list[Completion] = []
    start = 0
    for member, share in zip(members, shares, strict=True):
        own = [{**item, "index": i} for i, item in enumerate(data[start : start + member.inputs])]
        start += member.inputs
        usage = Usage(prompt_tokens=share, completion_tokens=0, total_tokens=share)
        parts.append(answer.model_copy(update={"usage": usage, "data": own}))
    return parts


def _apportioned(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights``, in whole numbers that sum to it."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    shares[0] += total - sum(shares)
    return shares


def _capture(run: Callable[[], ChatResult | None]) -> Outcome[ChatResult | None]:
    """What ``run`` returns, or the exception it raises, for another thread to raise."""
    try:
        return run()
    except Exception as exc:
        return exc
