"""One trace per job (chatq.shared.tracing): the gateway and a worker, real processes configured by
the standard ``OTEL_*`` variables, send their spans over OTLP/HTTP to an endpoint in this test
(chatq.otlp_sink), which keeps them in memory: no outside collector."""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from chatq.simulator.faults import FaultInjector
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from chatq.otlp_sink import OtlpSink
from tests.support.stacks import Stack, stack_fixture
from tests.support.waiting import eventually

SECRET_TEXT = "violet-harbour-4417"  # in every message: no span may hold it
API_KEY = "sk-tracing-test-key-5d1e"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    status: int
    links: list[str]  # linked trace ids
    start_ns: int
    end_ns: int


class Receiver:
    """Keeps the spans an ``OtlpSink`` is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.sink = OtlpSink(self.take)

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=SpanProto.SpanKind.Name(span.kind),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                            status=span.status.code,
                            links=[link.trace_id.hex() for link in span.links],
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                        )
                    )

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    def close(self) -> None:
        self.sink.close()


def _attributes(pairs: Any) -> dict[str, Any]:
    def value(v: Any) -> Any:
        kind = v.WhichOneof("value")
        if kind == "array_value":
            return [value(item) for item in v.array_value.values]
        return getattr(v, kind) if kind else None

    return {pair.key: value(pair.value) for pair in pairs}


def first_fault_then_none() -> int:
    """A simulator seed whose first request fails (a 500) and whose second does not."""
    for seed in range(1000):
        faults = FaultInjector(0.3, ("500",), random.Random(seed))
        if faults.draw() == "500" and faults.draw() is None:
            return seed
    raise AssertionError("no such seed")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


traced = stack_fixture(
    gateway=True,
    sim_args=["--fail-rate", "0.3", "--faults", "500", "--seed", str(first_fault_then_none())],
    from_fixtures=lambda receiver: {
        "extra_env": {**receiver.sink.env(every_ms=50), "CHATQ_PROVIDER_API_KEY": API_KEY}
    },
)


def new_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def arrived(
    receiver: Receiver, trace_id: str, names: set[str], *, at_least: int = 0
) -> list[ReceivedSpan]:
    """The trace's spans, once spans of each of ``names`` (and ``at_least`` in all) came."""

    def complete() -> list[ReceivedSpan] | None:
        spans = receiver.trace(trace_id)
        return spans if names <= {s.name for s in spans} and len(spans) >= at_least else None

    return eventually(complete, timeout=20)


def one_span(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def chat(stack: Stack, traceparent: str, **fields: Any) -> requests.Response:
    body = {
        "model": "sim-mini",
        "messages": [{"role": "user", "content": f"Tell me about {SECRET_TEXT}"}],
        "max_tokens": 8,
        **fields,
    }
    headers = {"traceparent": traceparent}
    reply = requests.post(
        f"{stack.gateway_url}/chat/completions", json=body, headers=headers, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return reply


def test_a_chat_is_one_trace_from_the_caller_to_the_provider(traced, receiver):
    traceparent, trace_id, caller_span = new_traceparent()
    chat(traced, traceparent)  # the simulator's first request fails: the worker retries
    expected = {"POST /v1/chat/completions", "chatq.queued", "chatq.run", "chatq.limiter"}
    spans = arrived(receiver, trace_id, expected, at_least=7)
    gateway = one_span(spans, "POST /v1/chat/completions")
    queued = one_span(spans, "chatq.queued")
    run = one_span(spans, "chatq.run")
    attempts = sorted((s for s in spans if s.name == "chat sim-mini"), key=lambda s: s.start_ns)
    limiter_waits = [s for s in spans if s.name == "chatq.limiter"]

    assert gateway.parent_id == caller_span, "the caller's traceparent is the trace's parent"
    assert (gateway.service, gateway.kind) == ("chatq-gateway", "SPAN_KIND_SERVER")
    assert queued.parent_id == gateway.span_id and queued.service == "chatq-worker"
    assert run.parent_id == queued.span_id
    assert queued.end_ns <= run.start_ns
    assert len(attempts) == 2, "the retry shows as a second attempt"
    assert len(limiter_waits) == 2  # one slot per attempt
    assert {s.parent_id for s in attempts + limiter_waits} == {run.span_id}
    assert [a.attributes["chatq.retry"] for a in attempts] == [0, 1]
    assert attempts[0].status == 2  # ERROR
    assert attempts[0].attributes["error.type"] == "provider_unavailable"
    assert attempts[0].attributes["http.response.status_code"] == 500
    assert attempts[1].status != 2
    assert attempts[1].attributes["gen_ai.response.finish_reasons"] == ["length"]
    assert attempts[1].attributes["gen_ai.usage.output_tokens"] == 8
    assert run.attributes["chatq.job.outcome"] == "done"
    assert gateway.attributes["http.response.status_code"] == 200

    sent = [r for r in traced.sim_requests() if trace_id in (r.get("traceparent") or "")]
    assert [r["traceparent"].split("-")[2] for r in sent] == [a.span_id for a in attempts]


def test_a_stream_has_its_span_after_the_first_token(traced, receiver):
    traceparent, trace_id, _ = new_traceparent()
    reply = chat(traced, traceparent, stream=True, max_tokens=20)
    assert reply.text.rstrip().endswith("data: [DONE]")
    spans = arrived(receiver, trace_id, {"chatq.stream", "POST /v1/chat/completions"})
    attempt = one_span(spans, "chat sim-mini")
    stream = one_span(spans, "chatq.stream")
    assert stream.parent_id == attempt.span_id
    assert attempt.start_ns < stream.start_ns <= stream.end_ns <= attempt.end_ns


def test_no_span_holds_message_text_tool_arguments_or_a_key(traced, receiver):
    traceparent, trace_id, _ = new_traceparent()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    reply = chat(traced, traceparent, tools=tools, tool_choice="required")
    arguments = reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    arrived(receiver, trace_id, {"chatq.run", "POST /v1/chat/completions"})
    forbidden = [SECRET_TEXT, API_KEY, arguments]
    for span in receiver.spans:
        for key, value in span.attributes.items():
            text = str(value)
            assert not any(f in text for f in forbidden if f), (span.name, key, text)


def test_a_cache_hit_links_to_the_trace_of_the_call_it_shares(traced, receiver):
    first, first_trace, _ = new_traceparent()
    again, again_trace, _ = new_traceparent()
    body = {"messages": [{"role": "user", "content": f"Once only {secrets.token_hex(4)}"}]}
    chat(traced, first, **body)
    chat(traced, again, **body)
    run = one_span(arrived(receiver, again_trace, {"chatq.run"}), "chatq.run")
    assert run.attributes["chatq.shared"] == "cached"
    assert run.links == [first_trace]
    assert not [s for s in receiver.trace(again_trace) if s.kind == "SPAN_KIND_CLIENT"]


def test_batch_lines_are_children_of_their_batch(traced, receiver):
    traceparent, trace_id, _ = new_traceparent()
    url = traced.gateway_url
    lines = [
        {
            "custom_id": f"line-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "sim-mini",
                "max_tokens": 4,
                "messages": [{"role": "user", "content": f"batch line {n} {trace_id}"}],
            },
        }
        for n in range(3)
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = requests.post(
        f"{url}/files",
        files={"file": ("lines.jsonl", content)},
        data={"purpose": "batch"},
        timeout=10,
    ).json()
    batch = requests.post(
        f"{url}/batches",
        json={
            "input_file_id": uploaded["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers={"traceparent": traceparent},
        timeout=10,
    ).json()
    eventually(
        lambda: (
            requests.get(f"{url}/batches/{batch['id']}", timeout=10).json()["status"] == "completed"
            or None
        ),
        timeout=60,
    )
    spans = arrived(receiver, trace_id, {"POST /v1/batches", "chatq.batch"}, at_least=11)
    created = one_span(spans, "POST /v1/batches")
    batch_span = one_span(spans, "chatq.batch")
    assert batch_span.parent_id == created.span_id
    queued = [s for s in spans if s.name == "chatq.queued"]
    assert len(queued) == 3 and {s.parent_id for s in queued} == {batch_span.span_id}


traced_gevent = stack_fixture(
    gateway=True,
    from_fixtures=lambda receiver: {
        "extra_env": {**receiver.sink.env(every_ms=50), "CHATQ_WORKER_POOL": "gevent"}
    },
)


def test_the_gevent_pool_traces_the_same_way(traced_gevent, receiver):
    traceparent, trace_id, caller_span = new_traceparent()
    chat(traced_gevent, traceparent)
    spans = arrived(receiver, trace_id, {"chat sim-mini", "POST /v1/chat/completions"})
    gateway = one_span(spans, "POST /v1/chat/completions")
    queued = one_span(spans, "chatq.queued")
    run = one_span(spans, "chatq.run")
    attempt = one_span(spans, "chat sim-mini")
    assert gateway.parent_id == caller_span
    assert (queued.parent_id, run.parent_id, attempt.parent_id) == (
        gateway.span_id,
        queued.span_id,
        run.span_id,
    )


def test_the_async_job_api_carries_the_callers_trace(traced, receiver):
    traceparent, trace_id, caller_span = new_traceparent()
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "later, please"}]}
    accepted = requests.post(
        f"{traced.gateway_url}/jobs", json=body, headers={"traceparent": traceparent}, timeout=10
    )
    assert accepted.status_code == 202, accepted.text
    spans = arrived(receiver, trace_id, {"POST /v1/jobs", "chatq.run", "chat sim-mini"})
    submitted = one_span(spans, "POST /v1/jobs")
    assert submitted.parent_id == caller_span
    assert one_span(spans, "chatq.queued").parent_id == submitted.span_id
