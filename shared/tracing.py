"""OpenTelemetry traces of a job's path, off unless the standard ``OTEL_*`` variables ask for
them: ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``) or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), and
``OTEL_SDK_DISABLED=true`` over all. Each part names its service (``chatq-gateway``,
``chatq-worker``) unless ``OTEL_SERVICE_NAME`` does; the exporter and batching read their own
``OTEL_EXPORTER_OTLP_*`` and ``OTEL_BSP_*`` settings.

A job carries its trace across the queue as a W3C ``traceparent`` (``ChatJob.traceparent``):
the gateway's span, or the caller's header when tracing is off here, so a traced provider or
proxy joins the caller's trace either way. Off, each helper is a flag test and no SDK code runs.

Span attributes follow OpenTelemetry's GenAI conventions (``gen_ai.*``), and are only ever
names, counts, ids and reasons: never message text, tool arguments or keys.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

INSTRUMENTATION = "chatq"
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
EXPORTERS = ("otlp", "console")

_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None  # set once tracing is on in this process
_provider: Any = None  # the SDK's TracerProvider behind it
_OFF = contextlib.nullcontext(INVALID_SPAN)

Attributes = Mapping[str, str | int | float | bool | Sequence[str]]


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure(service: str, *, exporter: SpanExporter | None = None) -> bool:
    """Turns tracing on in this process as service ``service`` if the environment asks, or
    with ``exporter`` (spans sent as they end: for tests). Whether it is on."""
    global _tracer, _provider
    if exporter is None and not wanted():
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter()))
    _tracer, _provider = provider.get_tracer(INSTRUMENTATION), provider
    return True


def shutdown() -> None:
    """Sends what is left and turns tracing off in this process (the SDK also sends what is
    left when the process exits)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def _exporter() -> SpanExporter:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip().lower()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: chatq sends {' or '.join(EXPORTERS)}")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def enabled() -> bool:
    return _tracer is not None


def recording() -> bool:
    """Whether the current span is kept (tracing on, and its trace sampled): what is worth
    working out for a span's attributes."""
    return _tracer is not None and trace.get_current_span().is_recording()


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a well-formed W3C ``traceparent``, else None."""
    return value if value is not None and TRACEPARENT.match(value) else None


def traceparent() -> str | None:
    """The current span's ``traceparent``, if tracing is on and a span is current."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def onward(received: str | None) -> str | None:
    """The ``traceparent`` to send on: the current span's when tracing is on, else the one
    ``received`` (if well-formed), so that the caller's trace goes on either way."""
    return traceparent() if _tracer is not None else valid_traceparent(received)


def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: str | None = None,
    links: Sequence[str] = (),
) -> contextlib.AbstractContextManager[Span]:
    """A span, current within the block: a child of the current span, or of ``parent`` (a
    ``traceparent``); ``links`` are other traces' ``traceparent``s. Off: a no-op span."""
    if _tracer is None:
        return _OFF
    context = _context(parent) if parent is not None else None
    return _current(_tracer, name, context, kind, attributes, links)


def _current(
    tracer: trace.Tracer,
    name: str,
    context: Any,
    kind: SpanKind,
    attributes: Attributes | None,
    links: Sequence[str] = (),
) -> contextlib.AbstractContextManager[Span]:
    """A span current within the block, which ends it; what raises through it is the
    caller's to judge (a deferred job is no failure)."""
    return tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes,
        links=[link for tp in links if (link := _link(tp)) is not None],
        record_exception=False,
        set_status_on_exception=False,
    )


def start(name: str, attributes: Attributes | None = None, *, at: float | None = None) -> Span:
    """A child of the current span that the caller ends (``span.end()``), from ``at``
    (Unix seconds) if given. Off: a no-op span."""
    if _tracer is None:
        return INVALID_SPAN
    start_time = None if at is None else int(at * 1e9)
    return _tracer.start_span(name, attributes=attributes, start_time=start_time)


@contextlib.contextmanager
def queued_then_run(
    job_traceparent: str | None, created_at: float, attributes: Attributes
) -> Iterator[Span]:
    """A job's time in the queue (from ``created_at`` until now), under the span that
    submitted it, then its run, current within the block, under that."""
    if _tracer is None:
        yield INVALID_SPAN
        return
    parent = _context(job_traceparent) if job_traceparent else None
    queued = _tracer.start_span(
        "chatq.queued",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes=attributes,
        start_time=int(created_at * 1e9),
    )
    queued.end()
    after = trace.set_span_in_context(queued, parent)
    with _current(_tracer, "chatq.run", after, SpanKind.CONSUMER, attributes) as run:
        yield run


@contextlib.contextmanager
def server_span(name: str, headers: Mapping[str, str], attributes: Attributes) -> Iterator[Span]:
    """A request's span, under the caller's ``traceparent`` header if it sent one."""
    if _tracer is None:
        yield INVALID_SPAN
        return
    context = _propagator.extract(headers)
    with _current(_tracer, name, context, SpanKind.SERVER, attributes) as served:
        yield served


def failed(span: Span, error_type: str, description: str | None = None) -> None:
    """Marks ``span`` failed, with OpenTelemetry's ``error.type``."""
    if span.is_recording():
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, description))


def _context(traceparent: str) -> Any:
    return _propagator.extract({"traceparent": traceparent})


def span_context(traceparent: str | None) -> SpanContext | None:
    """The span a ``traceparent`` names, to link to; None if there is none."""
    if traceparent is None:
        return None
    context = trace.get_current_span(_context(traceparent)).get_span_context()
    return context if context.is_valid else None


def _link(traceparent: str) -> Link | None:
    context = span_context(traceparent)
    return Link(context) if context is not None else None
