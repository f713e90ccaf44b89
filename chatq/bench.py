"""``chatq bench``: the pipeline measured against baselines taken in the same run.

Scenarios, all on a fresh embedded Redis, a zero-latency simulator and one worker process:
- throughput of a no-op Celery task (the floor: what Celery on this Redis does at best);
- throughput of chat jobs through the whole pipeline (SDK -> queue -> worker -> provider -> Redis);
- sequential latency of one chat through the queue against calling the simulator directly.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from chatq.bench_bulk import BulkOptions, measure_bulk
from chatq.bench_capacity import (
    CapacityOptions,
    measure_memory,
    measure_sustained,
    measure_ttft,
)
from chatq.bench_chaos import measure_chaos
from chatq.bench_fairness import FairnessOptions, measure_fairness
from chatq.bench_gateway import GatewayOptions, measure_gateway
from chatq.bench_gathering import GatheringOptions, measure_gathering
from chatq.bench_stack import bench_stack
from chatq.bench_tracing import measure_tracing
from chatq.chaos import ChaosOptions
from chatq.local_model import SLOTS
from chatq.processes import stop
from chatq.producers.client import ChatqClient
from chatq.producers.jobs import producer_app
from chatq.shared.celery_config import TASK_NOOP
from chatq.shared.settings import Settings
from chatq.stack import start_workers

_serial = itertools.count()
DEFAULT_SCENARIOS = (
    "pipeline",
    "sustained",
    "ttft",
    "memory",
    "gathering",
    "bulk",
    "chaos",
    "gateway",
    "tracing",
)
SCENARIOS = (*DEFAULT_SCENARIOS, "fairness")  # fairness (about 5 minutes) only when named
QUICK_SCENARIOS = ("pipeline", "sustained", "ttft", "memory")
LOCAL_SCENARIOS = ("pipeline", "ttft")  # the others use the simulator's own controls


def prompt() -> list[dict[str, str]]:
    """A prompt never sent before in this run: every job pays for a provider call, none is
    answered from the cache or shared with another."""
    return [{"role": "user", "content": f"Say hello, number {next(_serial)}."}]


@dataclass
class BenchOptions:
    jobs: int = 2000
    rounds: int = 5
    latency_samples: int = 400
    warmup: int = 50
    workers: int = 1
    bulk_jobs: int = 5000
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    gathering: GatheringOptions = field(default_factory=GatheringOptions)
    bulk: BulkOptions = field(default_factory=BulkOptions)
    capacity: CapacityOptions = field(default_factory=CapacityOptions)
    chaos: ChaosOptions = field(default_factory=ChaosOptions)
    gateway: GatewayOptions = field(default_factory=GatewayOptions)
    fairness: FairnessOptions = field(default_factory=FairnessOptions)
    provider: str = "simulator"  # or "local": the pipeline and ttft scenarios on a real model

    @classmethod
    def quick(cls) -> BenchOptions:
        return cls(
            jobs=400,
            rounds=3,
            latency_samples=100,
            warmup=20,
            bulk_jobs=0,
            scenarios=QUICK_SCENARIOS,
            gathering=GatheringOptions.quick(),
            bulk=BulkOptions.quick(),
            capacity=CapacityOptions.quick(),
            chaos=ChaosOptions(duration_s=30, kill_every_s=8),
            gateway=GatewayOptions.quick(),
        )

    @classmethod
    def local(cls) -> BenchOptions:
        """The scenarios a real model can run (``chatq.local_model``), sized for its speed:
        each job is a real generation of up to 16 tokens, four at a time."""
        return cls(
            jobs=100,
            rounds=3,
            latency_samples=30,
            warmup=5,
            bulk_jobs=0,
            scenarios=LOCAL_SCENARIOS,
            capacity=CapacityOptions.local(),
            provider="local",
        )


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def timed(calls: int, call: Callable[[], object]) -> list[float]:
    """Milliseconds each of ``calls`` sequential calls took."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def run_bench(options: BenchOptions, console: Console, json_path: Path | None = None) -> dict:
    report: dict[str, Any] = {"options": asdict(options), "results": {}}
    measures: dict[str, Callable[[], dict[str, Any]]] = {
        "pipeline": lambda: _pipeline_scenarios(options, console),
        "sustained": lambda: measure_sustained(options.capacity, console),
        "ttft": lambda: measure_ttft(options.capacity, console, options.provider),
        "memory": lambda: measure_memory(options.capacity, console),
        "gathering": lambda: measure_gathering(options.gathering, console),
        "bulk": lambda: measure_bulk(options.bulk, console),
        "chaos": lambda: measure_chaos(options.chaos, console),
        "gateway": lambda: measure_gateway(options.gateway, console),
        "tracing": lambda: measure_tracing(options.gateway, console),
        "fairness": lambda: measure_fairness(options.fairness, console),
    }
    for scenario, measure in measures.items():
        if scenario in options.scenarios:
            report["results"].update(measure())
    _print(console, report)
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2))
        console.print(f"Wrote {json_path}")
    return report


def _pipeline_scenarios(options: BenchOptions, console: Console) -> dict[str, Any]:
    with bench_stack(
        console, "Pipeline", workers=options.workers, provider=options.provider
    ) as stack:
        results = _measure(options, stack.settings, stack.sim_url, console)
        if options.bulk_jobs:
            stop(stack.workers)
            with console.status("Starting an interactive and a general worker..."):
                split = start_workers(
                    2,
                    stack.settings,
                    stack.env,
                    quiet=True,
                    group="split",
                    reserve_interactive=True,
                )
            try:
                results.update(_measure_bulk_isolation(options, stack.settings, console))
            finally:
                stop(split)
    return results


def _measure(
    options: BenchOptions, settings: Settings, sim_url: str, console: Console
) -> dict[str, Any]:
    celery = producer_app(settings)
    client = ChatqClient(settings)
    session = requests.Session()

    def noop_round_trip() -> None:
        celery.send_task(TASK_NOOP, args=[1]).get(timeout=30)

    def chat_round_trip() -> None:
        client.chat(prompt(), max_tokens=16)

    def direct_call() -> None:
        body = {"model": settings.default_model, "messages": prompt(), "max_tokens": 16}
        session.post(f"{sim_url}/chat/completions", json=body, timeout=30).raise_for_status()

    with console.status("Warming up..."):
        for call in (noop_round_trip, chat_round_trip, direct_call):
            timed(options.warmup, call)

    def noop_rate() -> float:
        started = time.perf_counter()
        handles = [celery.send_task(TASK_NOOP, args=[i]) for i in range(options.jobs)]
        for handle in handles:
            handle.get(timeout=120)
        return options.jobs / (time.perf_counter() - started)

    def pipeline_rate_and_failures() -> tuple[float, int]:
        started = time.perf_counter()
        job_ids = [client.submit(prompt(), max_tokens=16) for _ in range(options.jobs)]
        failures = sum(client.result(job_id, timeout=120).status != "done" for job_id in job_ids)
        return options.jobs / (time.perf_counter() - started), failures

    def direct_rate() -> float:
        """Jobs/s of the same calls made straight to a real model, as many at once as it
        serves (a real model's throughput is its own, not the queue's)."""
        started = time.perf_counter()
        with ThreadPoolExecutor(SLOTS) as pool:
            list(pool.map(lambda _: direct_call(), range(options.jobs)))
        return options.jobs / (time.perf_counter() - started)

    # Rounds alternate baseline and pipeline, and the medians are kept: on a small, shared
    # machine one run of either can be off by a fifth.
    noop_rates, pipeline_rates, direct_rates, failed = [], [], [], 0
    for round_number in range(1, options.rounds + 1):
        with console.status(f"Round {round_number}: {options.jobs} no-op tasks, then jobs..."):
            noop_rates.append(noop_rate())
            if options.provider == "local":
                direct_rates.append(direct_rate())
            rate, failures = pipeline_rate_and_failures()
            pipeline_rates.append(rate)
            failed += failures
    noop_rate_ = statistics.median(noop_rates)
    pipeline_rate = statistics.median(pipeline_rates)
    ratios = [p / n for p, n in zip(pipeline_rates, noop_rates, strict=True)]

    with console.status(f"Sequential latency: {options.latency_samples} samples each..."):
        direct = timed(options.latency_samples, direct_call)
        queued = timed(options.latency_samples, chat_round_trip)
        noop = timed(options.latency_samples, noop_round_trip)

    client.close()
    celery.close()
    results = {
        "noop_jobs_per_s": round(noop_rate_, 1),
        "pipeline_jobs_per_s": round(pipeline_rate, 1),
        "pipeline_vs_noop_ratio": round(statistics.median(ratios), 3),
        "pipeline_vs_noop_ratio_rounds": [round(r, 3) for r in ratios],
        "pipeline_failed_jobs": failed,
        "direct_latency_p50_ms": round(percentile(direct, 50), 2),
        "direct_latency_p99_ms": round(percentile(direct, 99), 2),
        "queued_latency_p50_ms": round(percentile(queued, 50), 2),
        "queued_latency_p99_ms": round(percentile(queued, 99), 2),
        "added_latency_p50_ms": round(percentile(queued, 50) - percentile(direct, 50), 2),
        "added_latency_p99_ms": round(percentile(queued, 99) - percentile(direct, 99), 2),
        "noop_round_trip_p50_ms": round(percentile(noop, 50), 2),
        "noop_round_trip_p99_ms": round(percentile(noop, 99), 2),
        "latency_mean_ms": round(statistics.fmean(queued), 2),
    }
    if direct_rates:
        results["direct_jobs_per_s"] = round(statistics.median(direct_rates), 1)
        results["pipeline_vs_direct_ratio"] = round(
            statistics.median(p / d for p, d in zip(pipeline_rates, direct_rates, strict=True)), 3
        )
    return results


def _measure_bulk_isolation(options: BenchOptions, settings: Settings, console: Console) -> dict:
    """Interactive chat latency alone, then while a bulk flood drains (same workers)."""
    client = ChatqClient(settings)

    def chat_round_trip() -> None:
        client.chat(prompt(), max_tokens=16)

    with console.status("Interactive latency, no bulk traffic..."):
        timed(options.warmup, chat_round_trip)
        alone = timed(options.latency_samples, chat_round_trip)
    with console.status(f"Interactive latency under a flood of {options.bulk_jobs} bulk jobs..."):
        bulk = [
            client.submit(prompt(), max_tokens=16, priority="bulk")
            for _ in range(options.bulk_jobs)
        ]
        flooded: list[float] = []
        while client.status(bulk[-1]).status != "done" and len(flooded) < 10_000:
            flooded += timed(10, chat_round_trip)
        for job_id in bulk:
            client.result(job_id, timeout=300)
    client.close()
    alone_p50, flooded_p50 = percentile(alone, 50), percentile(flooded, 50)
    return {
        "interactive_p50_ms_alone": round(alone_p50, 2),
        "interactive_p50_ms_under_bulk": round(flooded_p50, 2),
        "interactive_p50_bulk_ratio": round(flooded_p50 / alone_p50, 2),
        "interactive_samples_under_bulk": len(flooded),
    }


def _print(console: Console, report: dict[str, Any]) -> None:
    r = report["results"]
    table = Table(title="chatq bench: each figure against a baseline from the same run")
    table.add_column("measure")
    table.add_column("chatq", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio / added", justify="right")
    if "pipeline_jobs_per_s" in r:
        _pipeline_rows(table, r)
    if "sustained_jobs_per_s_1s_latency" in r:
        table.add_row(
            f"sustained jobs/s, 1 s provider, {r['sustained_concurrency']} in flight",
            f"{r['sustained_jobs_per_s_1s_latency']}",
            f"{r['sustained_baseline_bare_celery_jobs_per_s']} (bare Celery task)",
            f"{r['sustained_vs_bare_ratio']:.2f}x",
        )
    if "ttft_overhead_p50_ms" in r:
        table.add_row(
            "streaming time to first token p50, ms",
            f"{r['ttft_queued_p50_ms']}",
            f"{r['ttft_direct_p50_ms']} (direct stream)",
            f"+{r['ttft_overhead_p50_ms']} ms",
        )
    if "worker_rss_growth_pct" in r:
        table.add_row(
            f"worker RSS after {r['memory_jobs']} jobs, MB",
            f"{r['worker_rss_mb_after_jobs']}",
            f"{r['worker_rss_mb_after_warmup']} (after warm-up)",
            f"{r['worker_rss_growth_pct']:+.1f}%",
        )
    if "gathering_speedup" in r:
        _gathering_rows(table, r)
    if "bulk_lines" in r:
        _bulk_rows(table, r)
    if "gateway_requests_per_s" in r:
        table.add_row(
            "gateway: requests/s at 100 connections",
            f"{r['gateway_requests_per_s']} (p50 {r['gateway_p50_ms']} ms)",
            f"{r['gateway_direct_requests_per_s']} straight to the simulator",
            f"{r['gateway_vs_direct_ratio']:.3f}x",
        )
        table.add_row(
            "gateway: CPU ms per request (gateway, worker, Redis)",
            f"{r['gateway_cpu_ms_per_request']}",
            ", ".join(f"{k} {v}" for k, v in r["gateway_cpu_ms_per_request_by_process"].items()),
            f"{r['gateway_redis_commands_per_request']} Redis commands",
        )
    if "tracing_cost_ms_per_request" in r:
        table.add_row(
            "tracing: CPU ms per request, on (OTLP) / 10% sampled / off",
            f"{r['tracing_on_cpu_ms_per_request']} / {r['tracing_sampled_cpu_ms_per_request']}"
            f" / {r['tracing_off_cpu_ms_per_request']}",
            f"{r['tracing_spans_per_request']} spans a request; requests/s "
            f"{r['tracing_on_requests_per_s']} / {r['tracing_sampled_requests_per_s']} / "
            f"{r['tracing_off_requests_per_s']}",
            f"+{r['tracing_cost_ms_per_request']} / +{r['tracing_sampled_cost_ms_per_request']} ms",
        )
    if "fairness_fair" in r:
        _fairness_rows(table, r)
    if "chaos_jobs" in r:
        table.add_row(
            f"chaos: {r['chaos_jobs']} jobs, {r['chaos_kills']} workers SIGKILLed",
            f"{r['chaos_done']} done, ended once: {r['chaos_ended_exactly_once']}",
            f"{r['chaos_jobs_called_more_than_once']} called again after a kill, "
            f"{r['chaos_calls_beyond_claims']} beside a live run",
            f"slowest {r['chaos_latency_max_s']} s (bound {r['chaos_recovery_bound_s']} s + run)",
        )
    console.print(table)
    if r.get("pipeline_failed_jobs"):
        console.print(f"[red]{r['pipeline_failed_jobs']} pipeline jobs failed[/]")


def _gathering_rows(table: Table, r: dict[str, Any]) -> None:
    jobs = r["gathering_jobs"]
    table.add_row(
        f"gathering: provider calls for {jobs} jobs",
        f"{r['gathering_calls_on']}",
        f"{r['gathering_calls_off']} (window off)",
        f"{r['gathering_calls_on'] / r['gathering_calls_off']:.2f}x",
    )
    table.add_row(
        "gathering: prompt tokens billed",
        f"{r['gathering_prompt_tokens_on']}",
        f"{r['gathering_prompt_tokens_off']} (window off)",
        f"{r['gathering_prompt_tokens_on'] / r['gathering_prompt_tokens_off']:.2f}x",
    )
    table.add_row(
        "gathering: jobs/s under the rpm limit",
        f"{r['gathering_jobs_per_s_on']}",
        f"{r['gathering_jobs_per_s_off']} (window off)",
        f"{r['gathering_speedup']:.2f}x",
    )
    table.add_row(
        f"gathering: provider calls for {r['embeddings_jobs']} embeddings jobs",
        f"{r['embeddings_calls_on']}",
        f"{r['embeddings_calls_off']} (each alone)",
        f"{r['embeddings_calls_on'] / r['embeddings_calls_off']:.2f}x",
    )
    table.add_row(
        "gathering: embeddings jobs/s under the rpm limit",
        f"{r['embeddings_jobs_per_s_on']}",
        f"{r['embeddings_jobs_per_s_off']} (each alone)",
        f"{r['embeddings_speedup']:.2f}x",
    )
    table.add_row(
        "gathering: one-off request p50, ms",
        f"{r['gathering_one_off_p50_ms_on']}",
        f"{r['gathering_one_off_p50_ms_off']} (window off)",
        f"{r['gathering_one_off_p50_ms_on'] - r['gathering_one_off_p50_ms_off']:+.2f} ms",
    )


def _bulk_rows(table: Table, r: dict[str, Any]) -> None:
    lines = r["bulk_lines"]
    table.add_row(
        f"bulk batch: {lines} lines, 30% repeated, 5 bad",
        f"{r['bulk_results']} results, {r['bulk_error_records']} errors",
        f"{lines - 5} results, 5 errors (expected)",
        "bad lines named" if r["bulk_bad_lines_named"] else "[red]bad lines not named[/]",
    )
    table.add_row(
        "bulk batch: provider calls",
        f"{r['bulk_provider_calls']}",
        f"{lines} lines",
        f"{r['bulk_calls_per_line']:.2f} per line",
    )
    table.add_row(
        "bulk batch: runner peak RSS, MB",
        f"{r['bulk_runner_peak_rss_mb']}",
        f"{r['bulk_runner_peak_rss_mb_baseline']} ({r['bulk_baseline_lines']} lines)",
        f"{r['bulk_runner_peak_rss_mb'] / r['bulk_runner_peak_rss_mb_baseline']:.2f}x",
    )
    table.add_row("bulk batch: lines/s", f"{r['bulk_lines_per_s']}", "", "")


def _fairness_rows(table: Table, r: dict[str, Any]) -> None:
    o, fair, fifo = r["fairness_options"], r["fairness_fair"], r["fairness_fifo"]

    def each(figures: dict[str, Any]) -> str:
        return " / ".join(str(v) for v in figures.values())

    table.add_row(
        f"fairness: Jain's index while all wait, tenants of {'/'.join(map(str, o['skewed_jobs']))}"
        f" jobs ({o['rpm']} rpm)",
        f"{fair['jain']} ({fair['jain_window_s']} s)",
        f"{fifo['jain']} (FIFO, {fifo['jain_window_s']} s)",
        "target ~1",
    )
    table.add_row(
        f"fairness: longest wait of {o['light_jobs']} light jobs, {o['light_after_s']:g} s "
        f"after a flood of {o['flood_jobs']}, s",
        f"{fair['light_wait_max_s']}",
        f"{fifo['light_wait_max_s']} (FIFO)",
        "",
    )
    table.add_row(
        "fairness: jobs/s as a share of the limit (skewed load)",
        f"{fair['throughput_share']}",
        f"{fifo['throughput_share']} (FIFO)",
        f"{r['fairness_throughput_fair_vs_fifo']:.3f}x (target >= 0.95)",
    )
    table.add_row(
        f"fairness: Redis CPU ms per job at {' / '.join(f'{n:,}' for n in o['cpu_tenants'])} "
        f"tenants ({o['cpu_jobs']} jobs each, {o['cpu_rpm']} rpm)",
        each(fair["cpu_ms_per_job"]),
        f"{each(fifo['cpu_ms_per_job'])} (FIFO)",
        f"{fair['cpu_ratio_largest_to_smallest']}x, FIFO {fifo['cpu_ratio_largest_to_smallest']}x"
        " (target <= 2x)",
    )
    table.add_row(
        "fairness: those runs' jobs/s; peak tenants waiting",
        f"{each(fair['cpu_jobs_per_s'])}; {each(fair['peak_backlogged_tenants'])}",
        f"{each(fifo['cpu_jobs_per_s'])} (FIFO)",
        "",
    )
    table.add_row(
        "fairness: weighted tokens served, weight 3 : weight 1 "
        f"({'/'.join(map(str, o['weighted_jobs']))} jobs)",
        f"{fair['weight_ratio']} ({fair['weight_window_s']} s)",
        "",
        "target 3 +/- 0.3",
    )
    table.add_row(
        f"fairness: bulk's share of calls beside interactive ({'/'.join(map(str, o['bulk_jobs']))}"
        " jobs)",
        f"{fair['bulk_share']} ({fair['bulk_window_s']} s)",
        f"{fair['bulk_floor']} (bulk_floor)",
        "target >= floor",
    )
    table.add_row(
        "fairness: 429s from the simulator; jobs not done; wall time",
        f"{sum(fair['rate_limited'].values())}; {fair['not_done']}",
        f"{sum(fifo['rate_limited'].values())}; {fifo['not_done']} (FIFO)",
        f"{r['fairness_wall_s']} s",
    )


def _pipeline_rows(table: Table, r: dict[str, Any]) -> None:
    if "pipeline_vs_direct_ratio" in r:  # a real model: the calls made straight to it
        table.add_row(
            "throughput, jobs/s",
            f"{r['pipeline_jobs_per_s']}",
            f"{r['direct_jobs_per_s']} (direct, {SLOTS} at once)",
            f"{r['pipeline_vs_direct_ratio']:.2f}x",
        )
    else:
        table.add_row(
            "throughput, jobs/s",
            f"{r['pipeline_jobs_per_s']}",
            f"{r['noop_jobs_per_s']} (no-op task)",
            f"{r['pipeline_vs_noop_ratio']:.2f}x",
        )
    for q in ("p50", "p99"):
        table.add_row(
            f"latency {q}, ms",
            f"{r[f'queued_latency_{q}_ms']}",
            f"{r[f'direct_latency_{q}_ms']} (direct call)",
            f"+{r[f'added_latency_{q}_ms']} ms",
        )
    table.add_row(
        "no-op round trip p50/p99, ms",
        f"{r['noop_round_trip_p50_ms']} / {r['noop_round_trip_p99_ms']}",
        "",
        "",
    )
    if "interactive_p50_bulk_ratio" in r:
        table.add_row(
            "interactive p50 under bulk flood, ms",
            f"{r['interactive_p50_ms_under_bulk']}",
            f"{r['interactive_p50_ms_alone']} (no bulk)",
            f"{r['interactive_p50_bulk_ratio']:.2f}x",
        )
