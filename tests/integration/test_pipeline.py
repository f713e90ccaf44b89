"""A chat job end to end: SDK -> Celery on a real Redis -> real worker process -> simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

from chatq.shared.jobs import JobStatus


def test_a_submitted_job_completes(stack):
    with stack.client() as client:
        job_id = client.submit("Hello there", max_tokens=20)
        result = client.result(job_id, timeout=30)
    assert result.status is JobStatus.done
    assert result.content
    assert result.finish_reason in ("stop", "length")
    assert result.usage.completion_tokens <= 20
    assert result.timings.started_at >= result.timings.created_at


def test_200_jobs_at_once_all_complete_exactly_once(stack):
    stack.sim_reset()
    with stack.client() as client:
        job_ids = [client.submit(f"question {i}", max_tokens=8) for i in range(200)]
        results = [client.result(job_id, timeout=60) for job_id in job_ids]
        records = [client.status(job_id) for job_id in job_ids]
    assert all(r.status is JobStatus.done for r in results)
    assert [r.job_id for r in results] == job_ids
    assert all(record.attempts == 1 for record in records)
    calls = Counter(entry["job_id"] for entry in stack.sim_requests())
    assert {job_id: calls[job_id] for job_id in job_ids} == dict.fromkeys(job_ids, 1)
    for job_id in job_ids:
        ends = [f for _, f in stack.settings_redis().xrange(f"chatq:events:{job_id}")]
        assert [f["type"] for f in ends] == ["end"]


def test_the_provider_is_sent_what_the_caller_asked(stack):
    stack.sim_reset()
    with stack.client() as client:
        client.chat(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            max_tokens=5,
            temperature=0.2,
            session_id="s-1",
            metadata={"team": "a"},
        )
    body = stack.sim_requests()[-1]["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert body["max_tokens"] == 5 and body["temperature"] == 0.2
    assert body["metadata"] == {"team": "a"}  # OpenAI's field: forwarded
    assert "session_id" not in body


def test_cancelling_an_ended_job_changes_nothing(stack):
    with stack.client() as client:
        result = client.chat("Hi", max_tokens=3)
        assert not client.cancel(result.job_id)
        assert client.status(result.job_id).status is JobStatus.done


def test_chatq_chat_prints_the_streamed_answer(stack):
    env = {**os.environ, "CHATQ_REDIS_URL": stack.redis_url}
    run = subprocess.run(
        [sys.executable, "-m", "chatq", "chat", "Hello from the CLI", "--max-tokens", "6"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "assistant" in run.stdout and ": done in" in run.stdout


def test_chatq_chat_without_redis_says_what_to_do():
    env = {**os.environ, "CHATQ_REDIS_URL": "redis://127.0.0.1:1/0"}
    run = subprocess.run(
        [sys.executable, "-m", "chatq", "chat", "hi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "chatq up" in run.stdout and "CHATQ_REDIS_URL" in run.stdout


def test_a_job_past_its_deadline_is_cancelled_not_sent(stack):
    stack.sim_reset()
    with stack.client() as client:
        job_id = client.submit("too late", max_tokens=3, deadline_s=0.000001)
        result = client.result(job_id, timeout=30)
    assert result.status is JobStatus.cancelled
    assert result.error.code == "deadline_exceeded"
    assert stack.sim_stats()["requests"] == 0
