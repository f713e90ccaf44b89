"""The fairness bench's arithmetic: Jain's index, weighted service, windows, shares, rates."""

from __future__ import annotations

import math

import pytest
from chatq.shared.settings import SchedulerPolicy

from chatq.bench_fairness import (
    Ended,
    FairnessOptions,
    ModeFigures,
    _report,
    backlogged_window,
    calls_in,
    jain_index,
    jobs_per_s,
    longest_wait,
    service_in,
    share,
    weighted_tokens,
)


def job(
    tenant: str, created: float, finished: float, *, status: str = "done", completion: int = 16
) -> Ended:
    return Ended(tenant, status, created, finished, prompt_tokens=10, completion_tokens=completion)


def test_jain_is_one_when_all_get_the_same_and_one_over_n_when_one_gets_all():
    assert jain_index([5.0, 5.0, 5.0, 5.0]) == pytest.approx(1.0)
    assert jain_index([8.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain_index([1.0, 2.0, 3.0]) == pytest.approx(36 / 42)


def test_jain_of_nothing_served_is_not_a_number():
    assert math.isnan(jain_index([]))
    assert math.isnan(jain_index([0.0, 0.0]))


def test_weighted_tokens_weigh_prompt_and_completion_as_the_scheduler_does():
    assert weighted_tokens(job("a", 0, 1), SchedulerPolicy()) == 10 * 1 + 16 * 4
    policy = SchedulerPolicy(input_weight=2, output_weight=3)
    assert weighted_tokens(job("a", 0, 1, completion=5), policy) == 10 * 2 + 5 * 3


def test_the_window_runs_from_the_last_tenants_arrival_to_the_first_tenants_last_end():
    jobs = [job("a", 0.0, 1.0), job("a", 0.1, 9.0), job("b", 2.0, 3.0), job("b", 2.5, 6.0)]
    assert backlogged_window(jobs, ["a", "b"]) == (2.0, 6.0)


def test_service_counts_done_jobs_ending_within_the_window_for_the_tenants_named():
    jobs = [
        job("a", 0, 1.0),  # before the window
        job("a", 0, 2.0),
        job("a", 0, 3.0, status="failed"),
        job("b", 0, 4.0, completion=0),
        job("c", 0, 4.0),  # not one of the tenants named
        job("b", 0, 7.0),  # after the window
    ]
    served = service_in(jobs, (2.0, 5.0), ["a", "b", "d"], SchedulerPolicy())
    assert served == {"a": 74.0, "b": 10.0, "d": 0.0}


def test_calls_in_the_window_give_each_tenants_share():
    jobs = [job("chat", 0, t) for t in (1, 2, 3, 4, 5, 6, 7, 8, 9)] + [job("bulk", 0, 5)]
    calls = calls_in(jobs, (1, 9), ["chat", "bulk"])
    assert calls == {"chat": 9, "bulk": 1}
    assert share(calls, "bulk") == pytest.approx(0.1)
    assert math.isnan(share({"chat": 0, "bulk": 0}, "bulk"))


def test_jobs_per_s_counts_done_jobs_from_the_first_end_to_the_last():
    jobs = [job("a", 0, 10 + i * 0.5) for i in range(11)] + [job("a", 0, 99, status="failed")]
    assert jobs_per_s(jobs) == pytest.approx(2.0)
    assert math.isnan(jobs_per_s(jobs[:1]))


def test_longest_wait_is_from_submission_to_end():
    assert longest_wait([job("l", 2.0, 2.4), job("l", 2.1, 3.6), job("l", 2.2, 2.5)]) == 1.5


def test_the_report_sets_fair_beside_fifo_and_leaves_scenes_not_run_empty():
    options = FairnessOptions(cpu_tenants=(2, 10_000))
    fair = ModeFigures(throughput_share=0.9, cpu_ms_per_job={"2": 1.0, "10000": 1.5})
    fifo = ModeFigures(throughput_share=0.92, cpu_ms_per_job={"2": 1.0, "10000": 1.0})
    fair.weight_ratio = 3.0123
    report = _report(options, {"fair": fair, "fifo": fifo}, wall_s=300.04)
    assert report["fairness_throughput_fair_vs_fifo"] == pytest.approx(0.978)
    assert report["fairness_fair"]["cpu_ratio_largest_to_smallest"] == 1.5
    assert report["fairness_fair"]["weight_ratio"] == 3.012
    assert report["fairness_fifo"]["weight_ratio"] is None  # fair mode only
    assert report["fairness_fair"]["bulk_floor"] == SchedulerPolicy().bulk_floor
    assert report["fairness_wall_s"] == 300.0
