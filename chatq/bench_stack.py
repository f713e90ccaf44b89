"""A throwaway stack for one benchmark scenario: its own Redis, provider (the simulator, or
the local model) and workers."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from chatq.local_model import provider_env
from chatq.processes import Part, free_port, stop
from chatq.shared.settings import LOCAL_MODEL, Settings
from chatq.stack import start_local_model, start_redis, start_simulator, start_workers


@dataclass
class BenchStack:
    settings: Settings
    sim_url: str  # the provider's OpenAI base URL (…/v1): the simulator's, or the local model's
    workers: list[Part]
    env: dict[str, str]  # what the workers were started with

    def sim_stats(self) -> dict[str, Any]:
        return requests.get(f"{self.sim_root}/sim/stats", timeout=10).json()  # type: ignore[no-any-return]

    def sim_reset(self) -> None:
        requests.post(f"{self.sim_root}/sim/reset", timeout=10)

    @property
    def sim_root(self) -> str:
        return self.sim_url.removesuffix("/v1")

    @property
    def model(self) -> str:
        return self.settings.default_model


@contextmanager
def bench_stack(
    console: Console,
    label: str,
    *,
    sim_args: Sequence[str] = ("--ttft-ms", "0", "--tokens-per-s", "0"),
    env: dict[str, str] | None = None,
    workers: int = 1,
    provider: str = "simulator",
) -> Iterator[BenchStack]:
    """The stack; ``provider="local"``: the local model instead of the simulator (whose
    ``sim_args`` are then unused)."""
    parts: list[Part] = []
    stack: BenchStack | None = None
    with tempfile.TemporaryDirectory(prefix="chatq-bench-") as data_dir:
        try:
            with console.status(f"{label}: starting Redis, the {provider} and workers..."):
                redis = start_redis(free_port(), Path(data_dir), persist=False)
                parts.append(redis)
                local = provider == "local"
                if local:
                    sim = start_local_model(free_port())
                else:
                    sim = start_simulator(free_port(), list(sim_args))
                parts.append(sim)
                full_env = {
                    "CHATQ_REDIS_URL": redis.address,
                    "CHATQ_PROVIDER_BASE_URL": sim.address,
                    "CHATQ_TASK_EVENTS": "false",
                    "CHATQ_LOG_LEVEL": "WARNING",
                    "CHATQ_BENCH_TASKS": "true",  # the baselines, in these workers only
                    **(provider_env(sim.address) if local else {}),
                    **(env or {}),
                }
                settings = Settings(
                    _env_file=None,
                    redis_url=redis.address,
                    provider_base_url=sim.address,
                    task_events=False,
                    models=[LOCAL_MODEL if local else "sim-mini"],
                )
                started = start_workers(workers, settings, full_env, quiet=True)
                parts.extend(started)
            stack = BenchStack(settings, sim.address, started, full_env)
            yield stack
        finally:  # workers a scenario restarted are in stack.workers
            stop([*(stack.workers if stack else []), *parts])


def rss_mb(pid: int) -> float:
    """A process's resident memory now, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
