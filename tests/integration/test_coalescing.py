"""Identical requests make one provider call; answers are cached; distinct ones are not merged."""

from __future__ import annotations

from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture

# Two workers and a provider slow enough for identical jobs to overlap in flight.
slow = stack_fixture(workers=2, sim_args=["--ttft-ms", "300", "--tokens-per-s", "200"])


def test_100_identical_jobs_make_one_call_and_share_its_answer(slow):
    slow.sim_reset()
    with slow.client() as client:
        job_ids = [client.submit("What is a job queue?", max_tokens=20) for _ in range(100)]
        results = [client.result(job_id, timeout=60) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 100
    assert len({r.content for r in results}) == 1
    assert slow.sim_stats()["requests"] == 1
    shared = [r for r in results if r.coalesced_with or r.cached]
    assert len(shared) == 99
    stats = slow.settings_redis().hgetall("chatq:cache:stats")
    assert int(stats["coalesced"]) + int(stats.get("cache_hits", 0)) == 99
    assert int(stats["tokens_saved"]) == 99 * results[0].usage.total_tokens


def test_100_distinct_jobs_make_100_calls(slow):
    slow.sim_reset()
    with slow.client() as client:
        job_ids = [client.submit(f"Distinct question {i}", max_tokens=5) for i in range(100)]
        results = [client.result(job_id, timeout=60) for job_id in job_ids]
    assert all(r.status is JobStatus.done and not r.coalesced_with for r in results)
    assert slow.sim_stats()["requests"] == 100


def test_followers_that_stream_get_every_delta(slow):
    slow.sim_reset()
    with slow.client() as client:
        job_ids = [
            client.submit("Stream this to everyone", max_tokens=30, stream=True) for _ in range(10)
        ]
        streams = {job_id: "".join(client.stream(job_id, timeout=60)) for job_id in job_ids}
        results = [client.result(job_id) for job_id in job_ids]
    assert slow.sim_stats()["requests"] == 1
    assert all(streams[r.job_id] == r.content for r in results)


def test_a_cached_answer_is_served_until_the_caller_opts_out(slow):
    slow.sim_reset()
    with slow.client() as client:
        first = client.chat("Cache me", max_tokens=8)
        again = client.chat("Cache me", max_tokens=8)
        fresh = client.chat("Cache me", max_tokens=8, cache=False)
    assert again.cached and again.content == first.content
    assert not fresh.cached
    assert slow.sim_stats()["requests"] == 2
