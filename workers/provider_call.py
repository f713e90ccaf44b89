"""Calling a model for a job: a slot booked under the deployment's cluster-wide limits, the
call made (plain, or streamed through a ``StreamRelay``), and each failure handled as
``chatq.workers.retry.decide`` says: call again, try another deployment, or give up.

A job asking for ``n`` choices goes as one call where the deployment takes ``n`` (its
``max_n``), else as ``n`` calls whose answers become choices 0..n-1, each with a seed of its
own where the request has one (else every call would sample the same answer).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import urllib3
from chatq.shared import metrics, tracing
from chatq.shared.completion import Completion, Usage
from chatq.shared.deployments import Deployment, DeploymentRegistry
from chatq.shared.errors import (
    ChatqError,
    JobCancelled,
    ProviderAuthRejected,
    ProviderError,
    ProviderRejected,
    RateLimited,
)
from chatq.shared.jobs import ChatJob
from chatq.shared.settings import RetryPolicy
from chatq.shared.tokens import count_prompt_tokens
from chatq.workers.health import DeploymentHealth, NoUsableKey
from chatq.workers.limiter import ClusterLimiter, Deferred, Lease, estimate_tokens
from chatq.workers.provider import Endpoint, ProviderClient, ProviderReply, StreamChunk, StreamState
from chatq.workers.request_sent import when_sent
from chatq.workers.retry import FallBack, GiveUp, backoff_delay, decide
from chatq.workers.streaming import StreamRelay
from opentelemetry.trace import Span, SpanKind
from redis.exceptions import RedisError

log = logging.getLogger("chatq.worker")

LATE_SEND_S = 0.005  # a request sent this long after its gate is counted as sent then

DEFAULT_COMPLETION_ESTIMATE = 256  # tokens charged up front when a job sets no limit


@dataclass(frozen=True)
class Route:
    """The deployments that serve a job's model, and the one to call first."""

    deployments: list[Deployment]
    first: Deployment


@dataclass
class _Tries:
    """What the retry loop knows across the tries of one call."""

    deployment: Deployment
    lease: Lease
    retries: int = 0
    avoid: set[str] = field(default_factory=set)


class ProviderCalls:
    def __init__(
        self,
        provider: ProviderClient,
        registry: DeploymentRegistry,
        limiter: ClusterLimiter,
        health: DeploymentHealth,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_inline_wait_s: float = 30.0,
    ):
        self.provider = provider
        self.registry = registry
        self.limiter = limiter
        self.health = health
        self.policy = policy
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.clock = clock
        self.max_inline_wait_s = max_inline_wait_s

    # -- booking ---------------------------------------------------------------------------

    def route(self, job: ChatJob) -> Route:
        deployments = self.registry.for_alias(job.request.model)
        return Route(deployments, self.health.choose(deployments, avoid=set()))

    def book(self, job: ChatJob, deployment: Deployment, *, choices: int | None = None) -> Lease:
        """A slot for the job's call; raises ``Deferred`` if it is too far off to wait for."""
        return self._book(job, deployment, self.max_inline_wait_s, choices)

    def wait_for_slot(
        self, job: ChatJob, deployment: Deployment, *, choices: int | None = None
    ) -> Lease:
        """A slot for the job's call, waiting in this thread for as long as it takes."""
        while True:
            try:
                return self._book(job, deployment, float("inf"), choices)
            except Deferred as deferred:
                self.sleep(deferred.delay_s)

    def release(self, lease: Lease) -> None:
        """Gives back a slot that was not used."""
        self.limiter.settle(lease, 0)

    def _book(
        self, job: ChatJob, deployment: Deployment, max_wait_s: float, choices: int | None
    ) -> Lease:
        request = job.request
        tokens = 0
        if deployment.tpm:
            prompt = count_prompt_tokens(m.prompt_text() for m in request.messages)
            per_call = choices or _choices_per_call(request.choice_count, deployment)
            limit = request.completion_limit
            completion = (limit or DEFAULT_COMPLETION_ESTIMATE) * per_call
            tokens = estimate_tokens(prompt, completion, DEFAULT_COMPLETION_ESTIMATE)
        return self.limiter.book(
            deployment, tokens, max_wait_s=max_wait_s, exact_estimate=limit_known(job)
        )

    # -- calling ---------------------------------------------------------------------------

    def answer(
        self,
        job: ChatJob,
        route: Route,
        lease: Lease,
        relay: StreamRelay | None = None,
        *,
        choices: int | None = None,
    ) -> Completion:
        """The provider's answer to the job (``choices`` overrides its ``n``: a gathered call
        asks one choice per job); raises the ``ChatqError`` the job fails with."""
        wanted = choices or job.request.choice_count
        if choices is not None or wanted == 1 or route.first.max_n >= wanted:
            return self._call(job, route, lease, relay, choices=choices, expected=wanted)
        return self._one_by_one(job, route, lease, relay, wanted)

    def _one_by_one(
        self, job: ChatJob, route: Route, lease: Lease, relay: StreamRelay | None, n: int
    ) -> Completion:
        """``n`` choices from a deployment that gives one per call: ``n`` calls."""
        answers: list[Completion] = []
        for index in range(n):
            if index:
                lease = self.wait_for_slot(job, route.first, choices=1)
            answers.append(self._call(job, route, lease, relay, choices=1, expected=1, index=index))
        return merged(answers, streamed=relay is not None)

    def _call(
        self,
        job: ChatJob,
        route: Route,
        lease: Lease,
        relay: StreamRelay | None,
        *,
        choices: int | None,
        expected: int,
        index: int | None = None,
    ) -> Completion:
        tries = _Tries(route.first, lease)
        while True:
            deployment = tries.deployment
            metrics.LIMITER_WAIT.labels(deployment.name).observe(tries.lease.wait_s)
            with tracing.span("chatq.limiter", {"chatq.deployment": deployment.name}) as waited:
                if tries.lease.wait_s > 0:
                    self.sleep(tries.lease.wait_s)
                passed = self._pass_gate(deployment, tries.lease)
                if waited.is_recording():
                    waited.set_attribute("chatq.limiter.booked_wait_s", tries.lease.wait_s)
            reply: ProviderReply | None = None
            with tracing.span(
                f"chat {deployment.provider_model}",
                attempt_attributes(job, deployment, tries.retries) if tracing.recording() else None,
                kind=SpanKind.CLIENT,
            ) as attempt:
                try:
                    with when_sent(partial(self._sent, deployment, tries.lease, passed)):
                        reply = self._call_once(job, deployment, relay, choices, expected, index)
                    if reply.exhausted_for:  # spent, says the provider: slow everyone down now
                        self.limiter.pause(deployment, reply.exhausted_for)
                    if attempt.is_recording():
                        attempt.set_attributes(answer_attributes(reply.completion))
                    return reply.completion
                except JobCancelled:  # stopped for its cancel: no retry, and no fault of the
                    raise  # deployment's
                except ChatqError as exc:
                    error = exc
                    tracing.failed(attempt, exc.code or type(exc).__name__, exc.code)
                    if isinstance(exc, ProviderError) and exc.status and attempt.is_recording():
                        attempt.set_attribute("http.response.status_code", exc.status)
                finally:
                    usage = reply.completion.usage if reply is not None else None
                    self.limiter.settle(tries.lease, usage.total_tokens if usage else None)
            self._next_try(job, route, tries, error, choices)

    def _pass_gate(self, deployment: Deployment, lease: Lease) -> float:
        """Waits, if need be, until the provider's quantum window has room for the call;
        when it passed (``time.monotonic``)."""
        while (wait_s := self.limiter.gate(deployment, lease)) > 0:
            self.sleep(wait_s)
        return time.monotonic()

    def _sent(self, deployment: Deployment, lease: Lease, passed: float) -> None:
        """A request that left late after its gate is counted as sent when it did leave."""
        if time.monotonic() - passed < LATE_SEND_S:
            return
        try:
            self.limiter.restamp(deployment, lease)
        except RedisError as exc:  # the call is out: the gate's first stamp stands
            log.warning("could not count a late request as sent: %s", exc)

    def _next_try(
        self, job: ChatJob, route: Route, tries: _Tries, error: ChatqError, choices: int | None
    ) -> None:
        """Acts on a failed call (and books the next), or raises ``error`` to give up."""
        deployment = tries.deployment
        cooled_down = False
        if isinstance(error, NoUsableKey):
            self.health.record_failure(deployment)
            tries.avoid.add(deployment.name)
        elif isinstance(error, RateLimited):
            metrics.PROVIDER_RATE_LIMITED.labels(deployment.name).inc()
            self.health.record_rate_limited(deployment)
            pause = error.retry_after or backoff_delay(1, None, self.rng)
            self.limiter.pause(deployment, pause)
        elif not isinstance(error, (ProviderRejected, ProviderAuthRejected)):
            cooled_down = self.health.record_failure(deployment)
        decision = decide(
            error,
            retries=tries.retries,
            max_retries=self.policy.max_retries,
            rng=self.rng,
            several_deployments=len(route.deployments) > 1,
            untried_deployments=any(d.name not in tries.avoid for d in route.deployments),
            cooled_down=cooled_down,
            initial_delay=self.policy.initial_delay,
            max_delay=self.policy.max_delay,
        )
        if isinstance(decision, GiveUp):
            raise error
        if decision.counted:
            tries.retries += 1
            metrics.JOB_RETRIES.labels(job.request.model, job.request.priority.value).inc()
            log.info("retry %d in %.2f s: %s", tries.retries, decision.delay_s, error.message)
        if isinstance(decision, FallBack):
            tries.avoid.add(deployment.name)
        if decision.delay_s:
            self.sleep(decision.delay_s)
        tries.deployment = self.health.choose(route.deployments, avoid=set(tries.avoid))
        tries.lease = self.wait_for_slot(job, tries.deployment, choices=choices)
        if job.deadline is not None and self.clock() > job.deadline:
            raise ChatqError(
                "The job's deadline passed while it waited to be retried.",
                code="deadline_exceeded",
            )

    def _call_once(
        self,
        job: ChatJob,
        deployment: Deployment,
        relay: StreamRelay | None,
        choices: int | None,
        expected: int,
        index: int | None,
    ) -> ProviderReply:
        api_key = self.health.api_key(deployment)
        if job.embedding is not None:  # the inputs' vectors, as floats (the gateway encodes)
            endpoint = Endpoint(deployment.url, api_key, path="/embeddings")
            body = {
                "model": deployment.provider_model,
                **job.embedding.model_dump(exclude_none=True),
                "encoding_format": "float",
            }
        else:
            endpoint = Endpoint(deployment.url, api_key, deployment.transport)
            body = job.request.provider_body(
                stream=relay is not None, model=deployment.provider_model, choices=choices
            )
        if index is not None and isinstance(seed := body.get("seed"), int):
            body["seed"] = choice_seed(seed, index)
        started = time.perf_counter()
        trace = tracing.onward(job.traceparent)  # the attempt's span, or the caller's trace
        try:
            if job.embedding is not None:
                return self.provider.embed(endpoint, body, job_id=job.id, trace=trace)
            if relay is None:
                return self.provider.complete(endpoint, body, job_id=job.id, trace=trace)
            relay.new_attempt()
            state = StreamState()
            streamed: Span | None = None
            chunks = self.provider.stream(endpoint, body, job_id=job.id, state=state, trace=trace)
            try:
                for chunk in chunks:
                    if streamed is None:  # the first token: the stream's span starts
                        streamed = tracing.start("chatq.stream")
                    relay.feed(chunk if index is None else reindexed(chunk, index))
            finally:
                if streamed is not None:
                    streamed.end()
            return ProviderReply(relay.finish(expected), state.exhausted_for)
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


def attempt_attributes(job: ChatJob, deployment: Deployment, retry: int) -> dict[str, Any]:
    """What a provider attempt's span says of the request: names and numbers, no text."""
    request = job.request
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": deployment.provider_model,
        "chatq.deployment": deployment.name,
        "chatq.retry": retry,
        "server.address": urllib3.util.parse_url(deployment.url).host or "",
    }
    if (limit := request.completion_limit) is not None:
        attributes["gen_ai.request.max_tokens"] = limit
    if request.choice_count != 1:
        attributes["gen_ai.request.choice.count"] = request.choice_count
    if request.stream:
        attributes["chatq.stream"] = True
    return attributes


def answer_attributes(completion: Completion) -> dict[str, Any]:
    """What a provider attempt's span says of the answer: ids, reasons and token counts."""
    attributes: dict[str, Any] = {
        "gen_ai.response.finish_reasons": [c.finish_reason or "" for c in completion.choices],
    }
    if completion.id:
        attributes["gen_ai.response.id"] = completion.id
    if completion.model:
        attributes["gen_ai.response.model"] = completion.model
    if (usage := completion.usage) is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
    return attributes


def limit_known(job: ChatJob) -> bool:
    """Whether the job states its completion limit (providers charge it in full)."""
    return job.request.completion_limit is not None


def _choices_per_call(wanted: int, deployment: Deployment) -> int:
    return wanted if deployment.max_n >= wanted else 1


def choice_seed(seed: int, index: int) -> int:
    """The seed of choice ``index``'s call, when a request's ``n`` choices go as ``n`` calls:
    choice 0 keeps the caller's seed (as one call would), the others are distinct, the same
    for the same seed again, and in 0..2**31-1, which every server takes (llama.cpp's seeds
    are 32-bit)."""
    if index == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def reindexed(chunk: StreamChunk, index: int) -> StreamChunk:
    """A one-choice call's chunk, as choice ``index`` of the job's answer."""
    choices = [{**c, "index": index} for c in chunk.data.get("choices") or ()]
    return StreamChunk({**chunk.data, "choices": choices})


def merged(answers: list[Completion], *, streamed: bool) -> Completion:
    """One completion from one-choice calls: their choices in order, their usage summed. (A
    stream's last answer already holds every choice, gathered by its relay.)"""
    last = answers[-1]
    if streamed:
        choices = last.choices
    else:
        choices = [
            c.model_copy(update={"index": i})
            for i, answer in enumerate(answers)
            for c in answer.choices[:1]
        ]
    usage = None
    for answer in answers:
        if answer.usage is not None:
            usage = answer.usage if usage is None else added(usage, answer.usage)
    return last.model_copy(update={"choices": choices, "usage": usage})


def added(a: Usage, b: Usage) -> Usage:
    """The sum of two usages, detail objects included."""
    return Usage.model_validate(_sum(a.wire(), b.wire()))


def _sum(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _sum(a.get(k), b.get(k)) for k in {**a, **b}}
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    return a if b is None else b
