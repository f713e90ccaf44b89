"""Provider faults and rate limits: every job still succeeds, on the provider's schedule."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from chatq.producers.jobs import raise_for_result
from chatq.shared.errors import ProviderRejected
from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture

# A simulator failing 30% of calls with 500, 503, hangs and streams cut mid-way.
faulty_stack = stack_fixture(
    sim_args=[
        "--fail-rate",
        "0.3",
        "--faults",
        "500,503,timeout,cut",
        "--hang-s",
        "5",
        "--seed",
        "7",
    ],
    extra_env={"CHATQ_PROVIDER_TIMEOUT__READ": "1"},
)


def test_200_jobs_all_succeed_despite_30_percent_faults(faulty_stack):
    with faulty_stack.client() as client:
        job_ids = [
            client.submit(f"question {i}", max_tokens=10, stream=i % 2 == 0) for i in range(200)
        ]
        results = [client.result(job_id, timeout=120) for job_id in job_ids]
        streamed = {job_id: "".join(client.stream(job_id)) for job_id in job_ids[::2]}
    assert [r.status for r in results] == [JobStatus.done] * 200
    stats = faulty_stack.sim_stats()
    assert stats["faults"] > 30, stats  # the faults really happened
    for result in results[::2]:  # a retried stream never repeats text to consumers
        assert streamed[result.job_id] == result.content
    assert max(r.attempts for r in results) == 1  # retries happen inside one delivery


limited_stack = stack_fixture(sim_args=["--rpm", "60"])


def test_429s_are_retried_after_the_providers_retry_after(limited_stack):
    with limited_stack.client() as client:
        job_ids = [client.submit(f"limited {i}", max_tokens=4) for i in range(4)]
        results = [client.result(job_id, timeout=120) for job_id in job_ids]
    assert all(r.status is JobStatus.done for r in results)
    log = limited_stack.sim_requests()
    assert any(entry["outcome"] == "rate_limited" for entry in log)
    by_job: dict[str, list[dict]] = defaultdict(list)
    for entry in log:
        by_job[entry["job_id"]].append(entry)
    for entries in by_job.values():
        for refused, retried in itertools.pairwise(entries):
            if refused["outcome"] == "rate_limited":
                assert retried["t"] - refused["t"] >= refused["retry_after"] - 0.05


# A provider that knows only sim-mini, while chatq also offers sim-large.
rejecting_stack = stack_fixture(shared="one-model", sim_args=["--models", "sim-mini"])


def test_a_4xx_from_the_provider_fails_at_once_as_the_provider_said_it(rejecting_stack):
    rejecting_stack.sim_reset()
    with rejecting_stack.client() as client:
        job_id = client.submit("hi", model="sim-large")
        result = client.result(job_id, timeout=30)
        with pytest.raises(ProviderRejected, match="does not exist"):
            raise_for_result(result)
    assert result.status is JobStatus.failed
    error = result.error
    assert (error.status, error.type, error.code) == (
        404,
        "invalid_request_error",
        "model_not_found",
    )
    assert "sim-large" in error.message
    assert rejecting_stack.sim_stats()["requests"] == 1  # not retried
