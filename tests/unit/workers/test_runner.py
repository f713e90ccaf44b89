"""The runner's own path: claim, hooks, the call, the one end (in-memory fakes)."""

from __future__ import annotations

import time

import pytest
from chatq.shared.completion import Completion
from chatq.shared.errors import ProviderRejected
from chatq.shared.jobs import ChatJob, ChatRequest, JobStatus
from chatq.shared.settings import RetryPolicy
from chatq.workers.hooks import ChatHook, HookChain, Turn
from chatq.workers.lifecycle import JobLifecycle
from chatq.workers.limiter import Deferred
from chatq.workers.provider_call import ProviderCalls
from chatq.workers.runner import ChatRunner

from tests.unit.workers.fakes import (
    FakeHealth,
    FakeLimiter,
    FakeProvider,
    FakeRegistry,
    FakeStore,
    answer,
    deployment,
)


class Shout(ChatHook):
    def after(self, turn: Turn, answer: Completion) -> Completion:
        return answer.map_text(str.upper)


class Canned(ChatHook):
    name = "canned"

    def before(self, turn: Turn) -> str:
        return "From the hook."


def runner(
    provider: FakeProvider,
    *hooks: ChatHook,
    limiter: FakeLimiter | None = None,
    store: FakeStore | None = None,
) -> tuple[ChatRunner, FakeStore]:
    store = store or FakeStore()
    life = JobLifecycle(store, worker_name="w1", lease_s=30, clock=time.time)  # type: ignore[arg-type]
    calls = ProviderCalls(
        provider,
        FakeRegistry(deployment(rpm=60)),  # type: ignore[arg-type]
        limiter or FakeLimiter(),  # type: ignore[arg-type]
        FakeHealth(),  # type: ignore[arg-type]
        RetryPolicy(max_retries=2, initial_delay=0),
        sleep=lambda s: None,
        max_inline_wait_s=1.0,
    )
    return ChatRunner(life, calls, hooks=HookChain(hooks)), store


def job(**fields) -> ChatJob:
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return ChatJob(request=ChatRequest.model_validate(request))


def test_a_done_job_carries_the_providers_completion_through_the_hooks():
    run, store = runner(FakeProvider([answer("hello")]), Shout())
    one = job()
    result = run.run(one)
    assert result.status is JobStatus.done and result.attempts == 1
    assert result.completion.first.message.content == "HELLO"
    assert result.completion.system_fingerprint == "fp_fake" and result.model == "m"
    assert store.results[one.id] is result


def test_a_providers_refusal_ends_the_job_failed_as_the_provider_said_it():
    refusal = ProviderRejected("too long", status=400, error_type="invalid_request_error", code="c")
    run, _ = runner(FakeProvider([refusal]))
    result = run.run(job())
    assert result.status is JobStatus.failed
    assert (result.error.status, result.error.code, result.error.message) == (400, "c", "too long")


def test_a_hook_answer_skips_the_provider_and_streams_as_chunks():
    provider = FakeProvider()
    run, store = runner(provider, Canned())
    one = job(stream=True)
    result = run.run(one)
    assert result.answered_by == "canned" and provider.bodies == []
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in store.events[one.id])
    assert streamed == "From the hook."


def test_a_job_past_its_deadline_is_cancelled_unsent():
    provider = FakeProvider()
    run, _ = runner(provider)
    result = run.run(job(deadline_s=1).model_copy(update={"created_at": time.time() - 10}))
    assert result.status is JobStatus.cancelled and provider.bodies == []


def test_a_far_slot_sends_the_job_back_to_the_queue_unclaimed():
    run, store = runner(FakeProvider(), limiter=FakeLimiter(wait_s=60))
    one = job()
    with pytest.raises(Deferred):
        run.run(one)
    assert one.id not in store.attempts


def test_a_job_that_already_ended_is_skipped_and_its_slot_given_back():
    limiter = FakeLimiter()
    store = FakeStore()
    one = job()
    store.status[one.id] = JobStatus.cancelled
    run, _ = runner(FakeProvider(), limiter=limiter, store=store)
    assert run.run(one) is None
    assert limiter.settled == [0]


def test_a_model_no_deployment_serves_ends_the_job_failed():
    run, _ = runner(FakeProvider())
    result = run.run(job(model="gone"))
    assert result.status is JobStatus.failed and "no deployment" in result.error.message
