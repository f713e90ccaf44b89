"""Streamed jobs: every delta reaches consumers in order, however late they subscribe."""

from __future__ import annotations

import asyncio
import time

from chatq.producers.aio import AsyncChatqClient
from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

# A simulator that streams at 100 tokens/s after 300 ms, so jobs can be caught mid-way.
slow_stack = stack_fixture(sim_args=["--ttft-ms", "300", "--tokens-per-s", "100"])


def test_stream_matches_the_final_result(slow_stack):
    with slow_stack.client() as client:
        job_id = client.submit("Tell me a story", stream=True, max_tokens=30)
        deltas = list(client.stream(job_id, timeout=30))
        result = client.result(job_id)
    assert len(deltas) > 1
    assert "".join(deltas) == result.content
    assert result.usage is not None and result.usage.completion_tokens == len(deltas)
    assert result.timings.first_token_at is not None


def test_a_late_subscriber_gets_every_delta_from_the_first(slow_stack):
    redis = slow_stack.settings_redis()
    with slow_stack.client() as client:
        job_id = client.submit("A long answer please", stream=True, max_tokens=40)
        # the job is well under way
        eventually(lambda: redis.xlen(f"chatq:events:{job_id}") >= 5 or None, every=0.01)
        assert client.status(job_id).status is JobStatus.in_progress
        late = list(client.stream(job_id, timeout=30))
        after_the_end = list(client.stream(job_id, timeout=30))
        result = client.result(job_id)
    assert "".join(late) == result.content
    assert after_the_end == late


def test_the_same_request_streamed_or_not_gives_the_same_answer(slow_stack):
    with slow_stack.client() as client:
        plain = client.chat("Same question", max_tokens=12)
        streamed = "".join(client.chat_stream("Same question", max_tokens=12))
    assert streamed == plain.content


def test_cancel_during_the_call_ends_the_job_once_as_cancelled(slow_stack):
    with slow_stack.client() as client:
        job_id = client.submit("Slow one", max_tokens=30)
        eventually(lambda: client.status(job_id).status is JobStatus.in_progress or None)
        assert client.cancel(job_id)
        result = client.result(job_id, timeout=10)
        time.sleep(0.6)  # the worker's own finish comes after, and must change nothing
        record = client.status(job_id)
    assert result.status is JobStatus.cancelled
    assert record.status is JobStatus.cancelled


def test_async_client_chat_and_stream(slow_stack):
    async def run() -> tuple[str, list[str], str]:
        client = AsyncChatqClient(slow_stack.settings)
        try:
            plain = await client.chat("Async hello", max_tokens=10)
            job_id = await client.submit("Async hello", stream=True, max_tokens=10)
            deltas = [d async for d in client.stream(job_id)]
            return plain.content or "", deltas, (await client.result(job_id)).content or ""
        finally:
            await client.aclose()

    plain, deltas, streamed_result = asyncio.run(run())
    assert "".join(deltas) == streamed_result == plain
