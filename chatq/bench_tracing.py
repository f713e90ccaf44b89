"""``chatq bench --scenario tracing``: what traces cost. The gateway scenario's load, on a
stack with tracing off, on one exporting every span over OTLP/HTTP to an endpoint in the
bench (``chatq.otlp_sink``), and on one sampling a tenth of traces
(``OTEL_TRACES_SAMPLER=parentbased_traceidratio``), in alternation; CPU per request of
gateway, worker and Redis in each, and the differences: the cost of tracing per job."""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any

from rich.console import Console

from chatq.bench_gateway import GatewayOptions, GatewayRun, load_gateway
from chatq.otlp_sink import OtlpSink

ROUNDS = 2  # off, on, sampled, off, on, sampled: the machine's drift falls on each
SAMPLED = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}


def measure_tracing(options: GatewayOptions, console: Console) -> dict[str, Any]:
    options = replace(options, flower=False)  # Flower's share is not the question here
    runs: dict[str, list[GatewayRun]] = {"off": [], "on": [], "sampled": []}
    spans_per_request: list[float] = []
    with OtlpSink() as sink:
        envs = {"off": {}, "on": sink.env(), "sampled": {**sink.env(), **SAMPLED}}
        for n in range(1, ROUNDS + 1):
            for how, env in envs.items():
                before = sink.spans
                run = load_gateway(options, console, direct=False, env=env, title=f"{how} {n}")
                runs[how].append(run)
                if how == "on":
                    spans = sink.spans - before
                    spans_per_request.append(spans / max(1, run.through.requests))
    cpu_ms = {h: statistics.median(r.cpu_ms_per_request() for r in rs) for h, rs in runs.items()}
    per_s = {how: statistics.median(r.through.per_s for r in rs) for how, rs in runs.items()}
    return {
        "tracing_off_cpu_ms_per_request": round(cpu_ms["off"], 3),
        "tracing_on_cpu_ms_per_request": round(cpu_ms["on"], 3),
        "tracing_sampled_cpu_ms_per_request": round(cpu_ms["sampled"], 3),
        "tracing_cost_ms_per_request": round(cpu_ms["on"] - cpu_ms["off"], 3),
        "tracing_sampled_cost_ms_per_request": round(cpu_ms["sampled"] - cpu_ms["off"], 3),
        "tracing_off_requests_per_s": round(per_s["off"], 1),
        "tracing_on_requests_per_s": round(per_s["on"], 1),
        "tracing_sampled_requests_per_s": round(per_s["sampled"], 1),
        "tracing_spans_per_request": round(statistics.median(spans_per_request), 2),
    }
