"""Calling a model for a job: booking, retries, fallbacks, and n choices (in-memory fakes)."""

from __future__ import annotations

import pytest
from chatq.shared import tracing
from chatq.shared.errors import ProviderRejected, ProviderUnavailable
from chatq.shared.jobs import ChatJob, ChatRequest, Timings
from chatq.shared.settings import RetryPolicy
from chatq.shared.tokens import count_prompt_tokens
from chatq.workers.provider_call import ProviderCalls
from chatq.workers.streaming import ChunkPublisher, StreamRelay
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.unit.workers.fakes import (
    FakeHealth,
    FakeLimiter,
    FakeProvider,
    FakeRegistry,
    FakeStore,
    answer,
    deployment,
    text_chunks,
)


def job(**fields) -> ChatJob:
    request = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], **fields}
    return ChatJob(request=ChatRequest.model_validate(request))


def calls(provider: FakeProvider, *deployments, limiter: FakeLimiter | None = None):
    registry = FakeRegistry(*deployments)
    return ProviderCalls(
        provider,
        registry,  # type: ignore[arg-type]
        limiter or FakeLimiter(),  # type: ignore[arg-type]
        FakeHealth(),  # type: ignore[arg-type]
        RetryPolicy(max_retries=3, initial_delay=0),
        sleep=lambda s: None,
    )


def test_max_completion_tokens_is_booked_like_max_tokens_for_every_choice():
    limiter = FakeLimiter()
    caller = calls(FakeProvider(), deployment(tpm=10_000, max_n=4), limiter=limiter)
    prompt = count_prompt_tokens(["hello there"])
    for asked in (job(max_completion_tokens=40), job(max_tokens=40), job(max_tokens=40, n=3)):
        caller.book(asked, caller.route(asked).first)
    assert limiter.booked == [prompt + 40, prompt + 40, prompt + 120]


def test_a_503_is_retried_and_the_slot_settled_with_the_real_usage():
    limiter = FakeLimiter()
    provider = FakeProvider([ProviderUnavailable("down", status=503), answer(usage=7)])
    caller = calls(provider, limiter=limiter)
    asked = job()
    route = caller.route(asked)
    completion = caller.answer(asked, route, caller.book(asked, route.first))
    assert completion.first.message.content == "Hi there" and len(provider.bodies) == 2
    assert limiter.settled == [None, 7]


def test_a_rejected_request_is_not_sent_again():
    provider = FakeProvider([ProviderRejected("bad", status=400, error_type="x"), answer()])
    caller = calls(provider)
    asked = job()
    route = caller.route(asked)
    with pytest.raises(ProviderRejected):
        caller.answer(asked, route, caller.book(asked, route.first))
    assert len(provider.bodies) == 1


def test_a_failing_deployment_is_left_for_another():
    provider = FakeProvider([ProviderUnavailable("down", status=503), answer()])
    caller = calls(provider, deployment("d1"), deployment("d2"))
    asked = job()
    route = caller.route(asked)
    caller.answer(asked, route, caller.book(asked, route.first))
    assert [e.base_url for e in provider.endpoints] == ["http://d1", "http://d2"]


def test_n_goes_as_n_where_the_deployment_takes_it():
    provider = FakeProvider([answer(n=3)])
    caller = calls(provider, deployment(max_n=8))
    asked = job(n=3)
    route = caller.route(asked)
    completion = caller.answer(asked, route, caller.book(asked, route.first))
    assert [b.get("n") for b in provider.bodies] == [3]
    assert [c.index for c in completion.choices] == [0, 1, 2]


def test_n_goes_as_n_calls_where_the_deployment_gives_one_choice():
    provider = FakeProvider([answer("a", usage=5), answer("b", usage=6), answer("c", usage=7)])
    caller = calls(provider, deployment(max_n=1))
    asked = job(n=3)
    route = caller.route(asked)
    completion = caller.answer(asked, route, caller.book(asked, route.first))
    assert [b.get("n") for b in provider.bodies] == [None, None, None]
    assert [(c.index, c.message.content) for c in completion.choices] == [
        (0, "a"),
        (1, "b"),
        (2, "c"),
    ]
    assert completion.usage.total_tokens == 18 and completion.system_fingerprint == "fp_fake"


def test_n_calls_for_one_seeded_request_sample_with_a_seed_each():
    seeds: list[list[int | None]] = []
    for _ in range(2):  # the same request twice: the same seeds again
        provider = FakeProvider([answer("a"), answer("b"), answer("c")])
        caller = calls(provider, deployment(max_n=1))
        asked = job(n=3, seed=42)
        route = caller.route(asked)
        caller.answer(asked, route, caller.book(asked, route.first))
        seeds.append([b.get("seed") for b in provider.bodies])
    assert seeds[0] == seeds[1]
    assert seeds[0][0] == 42 and len(set(seeds[0])) == 3
    assert all(0 <= seed < 2**31 for seed in seeds[0])


def test_n_calls_for_an_unseeded_request_send_no_seed():
    provider = FakeProvider([answer("a"), answer("b")])
    caller = calls(provider, deployment(max_n=1))
    asked = job(n=2)
    route = caller.route(asked)
    caller.answer(asked, route, caller.book(asked, route.first))
    assert [b.get("seed") for b in provider.bodies] == [None, None]


def test_n_streamed_one_call_per_choice_publishes_each_as_its_own_index():
    provider = FakeProvider([text_chunks("first"), text_chunks("second")])
    caller = calls(provider, deployment(max_n=1))
    store = FakeStore()
    asked = job(n=2, stream=True)
    relay = StreamRelay(ChunkPublisher(store, lambda: 0.0, asked.id, Timings()))  # type: ignore[arg-type]
    route = caller.route(asked)
    completion = caller.answer(asked, route, caller.book(asked, route.first), relay)
    assert [c.message.content for c in completion.choices] == ["first", "second"]
    indices = [c["choices"][0]["index"] for c in store.events[asked.id]]
    assert indices.count(0) == indices.count(1) > 1
    assert completion.usage.total_tokens == 10


CALLER_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_with_tracing_off_the_callers_trace_still_reaches_the_provider():
    provider = FakeProvider([ProviderUnavailable("down", status=503), answer()])
    caller = calls(provider)
    asked = job().model_copy(update={"traceparent": CALLER_TRACE})
    route = caller.route(asked)
    caller.answer(asked, route, caller.book(asked, route.first))
    assert provider.traces == [CALLER_TRACE, CALLER_TRACE]


def test_with_tracing_on_each_attempt_is_a_span_the_provider_is_told_of():
    exporter = InMemorySpanExporter()
    tracing.configure("chatq-test", exporter=exporter)
    try:
        provider = FakeProvider([ProviderUnavailable("down", status=503), answer(usage=7)])
        caller = calls(provider)
        asked = job(max_tokens=9).model_copy(update={"traceparent": CALLER_TRACE})
        route = caller.route(asked)
        with tracing.span("chatq.run", parent=asked.traceparent):
            caller.answer(asked, route, caller.book(asked, route.first))
    finally:
        tracing.shutdown()
    spans = exporter.get_finished_spans()
    attempts = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert [s.attributes["chatq.retry"] for s in attempts] == [0, 1]
    assert attempts[0].attributes["http.response.status_code"] == 503
    assert attempts[1].attributes["gen_ai.request.max_tokens"] == 9
    used = attempts[1].attributes
    assert used["gen_ai.usage.input_tokens"] + used["gen_ai.usage.output_tokens"] == 7
    sent_from = [trace.split("-")[2] for trace in provider.traces]
    assert sent_from == [f"{s.context.span_id:016x}" for s in attempts]
    assert sum(s.name == "chatq.limiter" for s in spans) == 2
