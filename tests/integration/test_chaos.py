"""Chaos under load: a worker SIGKILLed every few seconds and started again, while jobs keep
coming. Every job ends exactly once, done, and none waits longer than the recovery bound."""

from __future__ import annotations

from collections import Counter

import pytest
from chatq.producers.client import ChatqClient

from chatq.chaos import ChaosOptions, run_chaos
from chatq.stack import start_worker
from tests.support.stacks import stack_fixture

pytestmark = pytest.mark.slow

OPTIONS = ChaosOptions(
    duration_s=40, kill_every_s=9, jobs_per_s=8, lease_s=4, lost_job_check_s=4, seed=7
)
RUN_S = 0.3 + 16 / 50  # the simulator's time to first token plus 16 tokens at 50/s
SLACK_S = 4.0  # a loaded 2-core machine: a restarted worker's start, scheduling


chaos_stack = stack_fixture(
    scope="function",
    sim_args=["--ttft-ms", "300", "--tokens-per-s", "50"],
    workers=3,
    extra_env=OPTIONS.worker_env(),
)


def test_killing_workers_under_load_loses_no_job_doubles_none_and_delays_none(chaos_stack):
    workers = [p for p in chaos_stack.parts if p.name.startswith("worker")]

    def restart(index: int):
        part = start_worker(index + 1, len(workers), chaos_stack.settings, chaos_stack.env)
        chaos_stack.parts.append(part)
        return part

    def sim_calls() -> Counter[str]:
        return Counter(e["job_id"] for e in chaos_stack.sim_requests() if e["outcome"] == "ok")

    with ChatqClient(OPTIONS.client_settings(chaos_stack.settings)) as client:
        report = run_chaos(client, workers, restart, sim_calls, OPTIONS)
    summary = report.as_dict()
    print(summary)
    assert report.kills >= 3
    assert report.done == report.jobs and not report.not_done
    assert report.ended_once, report.end_events
    assert report.max_latency_s <= OPTIONS.recovery_bound_s + RUN_S + SLACK_S, summary
    assert report.calls_beyond_claims == 0  # a job runs again only once its worker died
