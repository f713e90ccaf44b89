"""The tasks a worker registers: chatq's own, and the benchmark's baselines only where asked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LIST_TASKS = (
    "from chatq.workers.celery_app import app; app.loader.import_default_modules(); "
    "print(' '.join(sorted(t for t in app.tasks if t.startswith('chatq.'))))"
)


def registered(bench_tasks: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHATQ_BENCH_TASKS"}
    if bench_tasks is not None:
        env["CHATQ_BENCH_TASKS"] = bench_tasks
    done = subprocess.run(
        [sys.executable, "-c", LIST_TASKS], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


@pytest.mark.parametrize("bench_tasks", [None, "false"])
def test_a_production_worker_registers_no_benchmark_task(bench_tasks):
    assert registered(bench_tasks) == ["chatq.chat", "chatq.webhook"]


def test_a_benchmark_worker_registers_the_baselines():
    assert registered("true") == ["chatq.chat", "chatq.http_probe", "chatq.noop", "chatq.webhook"]
