"""``chatq bench`` scenario: what gathering gains, measured with it off and on.

A burst of sampled requests, each prompt repeated (as when many users ask a bot the same
thing), goes through one worker to a simulator with a request-rate limit, once with the
gather window at 0 (off) and once at its default. Also measured: the latency of one-off
requests, which must not pay for the window. Then a burst of embeddings requests, each of one
distinct text, under the same limit: each its own call (``max_inputs`` 1), then gathered into
list calls (the default).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from rich.console import Console

from chatq.bench_stack import bench_stack
from chatq.producers.client import ChatqClient
from chatq.shared.deployments import DEFAULT_MAX_INPUTS

_serial = itertools.count()


@dataclass
class GatheringOptions:
    prompts: int = 40
    copies: int = 8
    rpm: int = 6000
    window_ms: float = 5.0
    one_off_samples: int = 100

    @classmethod
    def quick(cls) -> GatheringOptions:
        return cls(prompts=15, copies=8, one_off_samples=30)


def measure_gathering(options: GatheringOptions, console: Console) -> dict[str, float]:
    off = _run_phase(options, 0.0, console)
    on = _run_phase(options, options.window_ms, console)
    alone = _embeddings_phase(options, 1, console)
    listed = _embeddings_phase(options, DEFAULT_MAX_INPUTS, console)
    return {
        "embeddings_jobs": alone["jobs"],
        "embeddings_calls_off": alone["calls"],
        "embeddings_calls_on": listed["calls"],
        "embeddings_jobs_per_s_off": round(alone["jobs_per_s"], 1),
        "embeddings_jobs_per_s_on": round(listed["jobs_per_s"], 1),
        "embeddings_speedup": round(listed["jobs_per_s"] / alone["jobs_per_s"], 2),
        "gathering_jobs": off["jobs"],
        "gathering_calls_off": off["calls"],
        "gathering_calls_on": on["calls"],
        "gathering_prompt_tokens_off": off["prompt_tokens"],
        "gathering_prompt_tokens_on": on["prompt_tokens"],
        "gathering_jobs_per_s_off": round(off["jobs_per_s"], 1),
        "gathering_jobs_per_s_on": round(on["jobs_per_s"], 1),
        "gathering_speedup": round(on["jobs_per_s"] / off["jobs_per_s"], 2),
        "gathering_one_off_p50_ms_off": round(off["one_off_p50_ms"], 2),
        "gathering_one_off_p50_ms_on": round(on["one_off_p50_ms"], 2),
    }


def _run_phase(options: GatheringOptions, window_ms: float, console: Console) -> dict[str, float]:
    from chatq.bench import percentile, timed

    label = f"Gathering, window {window_ms:g} ms" if window_ms else "Gathering off"
    env = {
        "CHATQ_PROVIDER_RPM": str(options.rpm),
        "CHATQ_PROVIDER_MAX_N": str(options.copies),
        "CHATQ_GATHER_WINDOW_MS": str(window_ms),
    }
    sim_args = ("--ttft-ms", "20", "--rpm", str(options.rpm))
    with (
        bench_stack(console, label, sim_args=sim_args, env=env) as stack,
        ChatqClient(stack.settings) as client,
    ):
        with console.status(f"{label}: one-off requests..."):
            one_off = timed(
                options.one_off_samples,
                lambda: client.chat(_unique_prompt(), temperature=0.8, max_tokens=16),
            )
        stack.sim_reset()
        with console.status(f"{label}: a burst of repeated prompts..."):
            burst = next(_serial)
            burst = [
                f"Question {p} of burst {burst}: what is a queue?"
                for p in range(options.prompts)
                for _ in range(options.copies)
            ]
            started = time.perf_counter()
            job_ids = [client.submit(text, temperature=0.8, max_tokens=16) for text in burst]
            for job_id in job_ids:
                client.result(job_id, timeout=300)
            took = time.perf_counter() - started
        stats = stack.sim_stats()
    return {
        "jobs": len(burst),
        "calls": stats["requests"],
        "prompt_tokens": stats["prompt_tokens"],
        "jobs_per_s": len(burst) / took,
        "one_off_p50_ms": percentile(one_off, 50),
    }


def _embeddings_phase(
    options: GatheringOptions, max_inputs: int, console: Console
) -> dict[str, float]:
    label = "Embeddings, each its own call" if max_inputs == 1 else "Embeddings, gathered"
    env = {"CHATQ_PROVIDER_RPM": str(options.rpm), "CHATQ_PROVIDER_MAX_INPUTS": str(max_inputs)}
    sim_args = ("--ttft-ms", "20", "--rpm", str(options.rpm))
    with (
        bench_stack(console, label, sim_args=sim_args, env=env) as stack,
        ChatqClient(stack.settings) as client,
    ):
        client.embed("warm-up")  # the model's key is hot from here on
        stack.sim_reset()
        with console.status(f"{label}: a burst of distinct texts..."):
            burst = next(_serial)
            texts = [f"Document {i} of burst {burst}." for i in range(options.prompts * 8)]
            started = time.perf_counter()
            job_ids = [client.submit(**client.embedding_job(t, None, None)) for t in texts]
            for job_id in job_ids:
                client.result(job_id, timeout=300)
            took = time.perf_counter() - started
        stats = stack.sim_stats()
    return {"jobs": len(texts), "calls": stats["requests"], "jobs_per_s": len(texts) / took}


def _unique_prompt() -> str:
    return f"A one-off question, number {next(_serial)}."
