"""HTTP/SSE and WebSocket transports pass the same tests: answers, streams, faults, 429s."""

from __future__ import annotations

from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture

TRANSPORTS = ["http", "websocket"]


def over(transport: str) -> dict[str, object]:
    return {"extra_env": {"CHATQ_PROVIDER_TRANSPORT": transport}}


# A provider failing 30% of calls (500, 503, streams cut mid-way), over one transport.
faulty = stack_fixture(
    params=TRANSPORTS,
    per_param=over,
    sim_args=[
        *("--fail-rate", "0.3", "--faults", "500,503,cut"),
        *("--seed", "3", "--tokens-per-s", "2000"),
    ],
)


def test_every_job_succeeds_and_streams_are_whole(faulty):
    with faulty.client() as client:
        job_ids = [client.submit(f"q {i}", max_tokens=12, stream=i % 2 == 0) for i in range(60)]
        results = [client.result(job_id, timeout=60) for job_id in job_ids]
        streamed = {j: "".join(client.stream(j)) for j in job_ids[::2]}
    assert [r.status for r in results] == [JobStatus.done] * 60
    assert faulty.sim_stats()["faults"] > 5
    for result in results[::2]:
        assert streamed[result.job_id] == result.content
        assert result.usage is not None


def test_plain_and_streamed_answers_agree(faulty):
    with faulty.client() as client:
        plain = client.chat("Same question", max_tokens=10)
        streamed = "".join(client.chat_stream("Same question", max_tokens=10))
    assert streamed == plain.content


limited = stack_fixture(params=TRANSPORTS, per_param=over, sim_args=["--rpm", "120"])


def test_429s_pause_and_retry(limited):
    with limited.client() as client:
        job_ids = [client.submit(f"limited {i}", max_tokens=4, stream=True) for i in range(6)]
        results = [client.result(job_id, timeout=60) for job_id in job_ids]
    assert all(r.status is JobStatus.done for r in results)
    assert limited.sim_stats()["rate_limited"] >= 1
