"""Identical sampled jobs arriving together share one multi-choice call, each with its own
answer; real worker processes, Redis and simulator."""

from __future__ import annotations

from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture

batching = stack_fixture(
    sim_args=["--ttft-ms", "100"],
    extra_env={"CHATQ_PROVIDER_MAX_N": "8", "CHATQ_GATHER_WINDOW_MS": "50"},
)


def test_identical_sampled_jobs_share_calls_and_each_gets_its_own_choice(batching):
    batching.sim_reset()
    with batching.client() as client:
        job_ids = [
            client.submit("Tell me a story", temperature=0.9, max_tokens=20) for _ in range(32)
        ]
        results = [client.result(job_id, timeout=60) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 32
    calls = batching.sim_stats()["requests"]
    assert calls <= 8, f"{calls} provider calls for 32 jobs, max_n 8"
    assert sum(1 for r in results if (r.gathered or 1) > 1) >= 24
    assert len({r.content for r in results}) >= 8  # samples, not one shared answer
    log = batching.sim_requests()
    assert max(entry["body"].get("n", 1) for entry in log) == 8


def test_streams_and_deterministic_jobs_are_not_batched(batching):
    batching.sim_reset()
    with batching.client() as client:
        streamed = [
            client.submit("Stream a story", temperature=0.9, stream=True, max_tokens=5)
            for _ in range(4)
        ]
        results = [client.result(job_id, timeout=60) for job_id in streamed]
    assert all(r.status is JobStatus.done and r.gathered is None for r in results)
    assert all("n" not in entry["body"] for entry in batching.sim_requests())
