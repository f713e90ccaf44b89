"""``chatq bench`` scenarios on capacity, each against a baseline taken in the same run:

- sustained: jobs/s one worker process keeps up with a 1 s provider and hundreds of calls in
  flight, against a bare Celery task making the same HTTP call on the same pool;
- ttft: time to first token of a streamed job, against streaming from the provider (the
  simulator, or the local model) directly;
- memory: the worker's RSS after many jobs, against its RSS after a warm-up.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass

import requests
from rich.console import Console

from chatq.bench_stack import bench_stack, rss_mb
from chatq.producers.client import ChatqClient
from chatq.producers.jobs import producer_app
from chatq.shared.celery_config import TASK_HTTP_PROBE

_serial = itertools.count()


def _prompt() -> str:
    return f"Capacity probe {next(_serial)}: hello."


@dataclass
class CapacityOptions:
    sustained_jobs: int = 4000
    sustained_concurrency: int = 500
    ttft_samples: int = 300
    memory_jobs: int = 100_000
    memory_warmup: int = 5_000

    @classmethod
    def quick(cls) -> CapacityOptions:
        return cls(sustained_jobs=1500, ttft_samples=60, memory_jobs=5_000, memory_warmup=1_000)

    @classmethod
    def local(cls) -> CapacityOptions:
        """For the local model: fewer samples, each a real model's generation."""
        return cls(ttft_samples=40)


def measure_sustained(options: CapacityOptions, console: Console) -> dict[str, float]:
    """Jobs/s with a 1 s provider, chatq against a bare Celery task calling it too."""
    concurrency = str(options.sustained_concurrency)
    env = {"CHATQ_WORKER_CONCURRENCY": concurrency, "CHATQ_MAX_INLINE_WAIT_S": "30"}
    args = ("--ttft-ms", "1000", "--tokens-per-s", "0")
    with bench_stack(console, "Sustained, 1 s provider", sim_args=args, env=env) as stack:
        celery = producer_app(stack.settings)
        url = f"{stack.sim_url}/chat/completions"
        body = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}]}
        jobs = options.sustained_jobs
        with console.status(f"Bare Celery task calling the 1 s provider, {jobs} times..."):
            started = time.perf_counter()
            handles = [celery.send_task(TASK_HTTP_PROBE, args=[url, body]) for _ in range(jobs)]
            for handle in handles:
                handle.get(timeout=300)
            bare = jobs / (time.perf_counter() - started)
        with (
            ChatqClient(stack.settings) as client,
            console.status(f"chatq jobs against the 1 s provider, {jobs} of them..."),
        ):
            started = time.perf_counter()
            job_ids = [client.submit(_prompt(), max_tokens=8) for _ in range(jobs)]
            failed = sum(client.result(j, timeout=300).status != "done" for j in job_ids)
            piped = jobs / (time.perf_counter() - started)
        celery.close()
    return {
        "sustained_jobs_per_s_1s_latency": round(piped, 1),
        "sustained_baseline_bare_celery_jobs_per_s": round(bare, 1),
        "sustained_vs_bare_ratio": round(piped / bare, 3),
        "sustained_concurrency": options.sustained_concurrency,
        "sustained_failed_jobs": failed,
    }


def measure_ttft(
    options: CapacityOptions, console: Console, provider: str = "simulator"
) -> dict[str, float]:
    """Time to the first streamed delta through chatq, against a direct stream."""
    from chatq.bench import percentile

    with bench_stack(console, "Streaming TTFT", provider=provider) as stack:
        session = requests.Session()
        url = f"{stack.sim_url}/chat/completions"

        def direct() -> float:
            body = {"model": stack.model, "messages": [{"role": "user", "content": _prompt()}]}
            body |= {"max_tokens": TTFT_MAX_TOKENS, "stream": True}
            started = time.perf_counter()
            with session.post(url, json=body, stream=True, timeout=30) as r:
                for line in r.iter_lines():
                    if _has_content(line):
                        return (time.perf_counter() - started) * 1000
            raise RuntimeError("the direct stream gave no content")

        with ChatqClient(stack.settings) as client:

            def queued() -> float:
                started = time.perf_counter()
                job_id = client.submit(_prompt(), stream=True, max_tokens=TTFT_MAX_TOKENS)
                for _ in client.stream(job_id):
                    return (time.perf_counter() - started) * 1000
                raise RuntimeError("the job streamed nothing")

            with console.status(f"TTFT: {options.ttft_samples} streams each way..."):
                for _ in range(min(20, options.ttft_samples)):
                    direct(), queued()
                direct_ms, queued_ms = [], []
                for _ in range(options.ttft_samples):
                    direct_ms.append(direct())
                    queued_ms.append(queued())
    return {
        "ttft_direct_p50_ms": round(percentile(direct_ms, 50), 2),
        "ttft_queued_p50_ms": round(percentile(queued_ms, 50), 2),
        "ttft_overhead_p50_ms": round(percentile(queued_ms, 50) - percentile(direct_ms, 50), 2),
        "ttft_overhead_p99_ms": round(percentile(queued_ms, 99) - percentile(direct_ms, 99), 2),
    }


TTFT_MAX_TOKENS = 8  # enough to see the first token; a real model then stops soon


def _has_content(line: bytes) -> bool:
    """Whether an SSE line is a chunk with text (not the role-only first one)."""
    if not line.startswith(b"data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


def measure_memory(options: CapacityOptions, console: Console) -> dict[str, float]:
    """The worker's RSS growth over many jobs, from its size after a warm-up."""
    with bench_stack(console, "Worker memory") as stack, ChatqClient(stack.settings) as client:
        pid = stack.workers[0].process.pid

        def run(count: int, label: str) -> None:
            window: list[str] = []
            with console.status(label):
                for _ in range(count):
                    window.append(client.submit(_prompt(), max_tokens=8))
                    if len(window) >= 500:
                        for job_id in window:
                            client.result(job_id, timeout=120)
                        window.clear()
                for job_id in window:
                    client.result(job_id, timeout=120)

        run(options.memory_warmup, f"Memory: warming up with {options.memory_warmup} jobs...")
        before = rss_mb(pid)
        started = time.perf_counter()
        run(options.memory_jobs, f"Memory: {options.memory_jobs} jobs...")
        took = time.perf_counter() - started
        after = rss_mb(pid)
    return {
        "worker_rss_mb_after_warmup": round(before, 1),
        "worker_rss_mb_after_jobs": round(after, 1),
        "worker_rss_growth_pct": round((after - before) / before * 100, 2),
        "memory_jobs": options.memory_jobs,
        "memory_jobs_per_s": round(options.memory_jobs / took, 1),
    }
