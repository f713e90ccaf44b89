"""``chatq bench --scenario tracing``: what traces cost. The gateway scenario's load, on a
stack with tracing off and on one exporting every span over OTLP/HTTP to an endpoint in the
bench (``chatq.otlp_sink``), in alternation; CPU per request of gateway, worker and Redis in
each, and the difference: the cost of tracing per job."""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any

from rich.console import Console

from chatq.bench_gateway import GatewayOptions, GatewayRun, load_gateway
from chatq.otlp_sink import OtlpSink

ROUNDS = 2  # off, on, off, on: the machine's drift falls on both


def measure_tracing(options: GatewayOptions, console: Console) -> dict[str, Any]:
    options = replace(options, flower=False)  # Flower's share is not the question here
    off: list[GatewayRun] = []
    on: list[GatewayRun] = []
    spans_per_request: list[float] = []
    with OtlpSink() as sink:
        for n in range(1, ROUNDS + 1):
            off.append(load_gateway(options, console, direct=False, title=f"Untraced {n}"))
            before = sink.spans
            traced = load_gateway(
                options, console, direct=False, env=sink.env(), title=f"Traced {n}"
            )
            on.append(traced)
            spans_per_request.append((sink.spans - before) / max(1, traced.through.requests))
    off_ms = statistics.median(r.cpu_ms_per_request() for r in off)
    on_ms = statistics.median(r.cpu_ms_per_request() for r in on)
    off_per_s = statistics.median(r.through.per_s for r in off)
    on_per_s = statistics.median(r.through.per_s for r in on)
    return {
        "tracing_off_cpu_ms_per_request": round(off_ms, 3),
        "tracing_on_cpu_ms_per_request": round(on_ms, 3),
        "tracing_cost_ms_per_request": round(on_ms - off_ms, 3),
        "tracing_off_requests_per_s": round(off_per_s, 1),
        "tracing_on_requests_per_s": round(on_per_s, 1),
        "tracing_on_vs_off_throughput": round(on_per_s / off_per_s, 3) if off_per_s else 0,
        "tracing_spans_per_request": round(statistics.median(spans_per_request), 2),
    }
