"""``chatq bench`` scenario: chaos under load (``chatq.chaos``), on a stack of its own with
three workers and a simulator taking about a second per answer."""

from __future__ import annotations

from collections import Counter
from typing import Any

import requests
from rich.console import Console

from chatq.bench_stack import bench_stack
from chatq.chaos import ChaosOptions, run_chaos
from chatq.processes import Part
from chatq.producers.client import ChatqClient
from chatq.stack import start_worker

WORKERS = 3
SIM_ARGS = ("--ttft-ms", "300", "--tokens-per-s", "50", "--log-size", "200000")


def measure_chaos(options: ChaosOptions, console: Console) -> dict[str, Any]:
    with bench_stack(
        console, "Chaos", sim_args=SIM_ARGS, env=options.worker_env(), workers=WORKERS
    ) as stack:

        def restart(index: int) -> Part:
            part = start_worker(index + 1, WORKERS, stack.settings, stack.env, quiet=True)
            stack.workers[index] = part  # the stack stops the one running at the end
            return part

        def sim_calls() -> Counter[str]:
            log = requests.get(f"{stack.sim_root}/sim/requests", timeout=30).json()["requests"]
            return Counter(e["job_id"] for e in log if e["outcome"] == "ok")

        with (
            console.status(
                f"Chaos: {options.jobs_per_s:g} jobs/s for {options.duration_s:g} s, a worker "
                f"killed every ~{options.kill_every_s:g} s..."
            ),
            ChatqClient(options.client_settings(stack.settings)) as client,
        ):
            report = run_chaos(client, list(stack.workers), restart, sim_calls, options)
    return {**report.as_dict(), "chaos_recovery_bound_s": options.recovery_bound_s}
