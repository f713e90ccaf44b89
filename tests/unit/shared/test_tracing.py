"""Tracing's switches and helpers (chatq.shared.tracing), with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chatq.shared import tracing
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture()
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("chatq-test", exporter=exporter)
    yield exporter
    tracing.shutdown()


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_where_the_environment_asks(env, wanted):
    assert tracing.wanted(env) is wanted


def test_off_every_helper_is_a_no_op():
    assert not tracing.enabled()
    with tracing.span("anything", {"a": 1}) as span:
        assert not span.is_recording()
        assert tracing.traceparent() is None
    assert tracing.onward(CALLER) == CALLER  # the caller's trace still goes on
    assert tracing.onward("garbage") is None


def test_a_malformed_traceparent_is_not_passed_on():
    assert tracing.valid_traceparent(CALLER) == CALLER
    for bad in ("", "00-xyz", CALLER.upper(), CALLER + "-extra"):
        assert tracing.valid_traceparent(bad) is None


def test_a_job_is_queued_then_run_under_the_span_that_sent_it(exported):
    with tracing.queued_then_run(CALLER, created_at=1_000.0, attributes={"chatq.job.id": "j"}):
        with tracing.span("chatq.limiter"):
            pass
        onward = tracing.onward(None)
    queued, run, limiter = sorted(exported.get_finished_spans(), key=lambda s: s.start_time)
    assert (queued.name, run.name, limiter.name) == ("chatq.queued", "chatq.run", "chatq.limiter")
    assert queued.start_time == 1_000 * 10**9
    assert f"{queued.parent.span_id:016x}" == CALLER.split("-")[2]
    assert run.parent.span_id == queued.context.span_id
    assert limiter.parent.span_id == run.context.span_id
    assert len({s.context.trace_id for s in (queued, run, limiter)}) == 1
    assert onward == f"00-{run.context.trace_id:032x}-{run.context.span_id:016x}-01"
    assert run.kind is SpanKind.CONSUMER and queued.kind is SpanKind.PRODUCER
    assert queued.resource.attributes["service.name"] == "chatq-test"


def test_a_span_links_to_other_traces(exported):
    with tracing.span("chatq.run", links=[CALLER, "not a traceparent"]):
        pass
    (span,) = exported.get_finished_spans()
    assert [f"{link.context.trace_id:032x}" for link in span.links] == [CALLER.split("-")[1]]


def test_a_failed_span_says_why(exported):
    with tracing.span("chat m") as span:
        tracing.failed(span, "provider_unavailable", "provider_unavailable")
    (ended,) = exported.get_finished_spans()
    assert ended.attributes["error.type"] == "provider_unavailable"
    assert not ended.status.is_ok
