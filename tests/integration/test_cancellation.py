"""A cancel reaches the provider: the worker running the job shuts its call down, so the
provider stops generating within a second, and the job ends cancelled once."""

from __future__ import annotations

import time

import requests
from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

# 1500 tokens at 40 a second: a call of over 30 s, unless it is stopped.
stack = stack_fixture(gateway=True, sim_args=["--ttft-ms", "100", "--tokens-per-s", "40"])


def generating(stack) -> int:
    return stack.sim_stats()["active"]


def test_cancelling_a_streaming_job_stops_the_providers_generation_within_a_second(stack):
    redis = stack.settings_redis()
    with stack.client() as client:
        job_id = client.submit("A very long answer", stream=True, max_tokens=1500, cache=False)
        eventually(lambda: redis.xlen(f"chatq:events:{job_id}") >= 5 or None, every=0.02)
        assert generating(stack) == 1
        cancelled_at = time.monotonic()
        reply = requests.delete(f"{stack.gateway_url}/jobs/{job_id}", timeout=10)
        assert reply.json()["status"] == "cancelled"
        eventually(lambda: generating(stack) == 0 or None, timeout=5, every=0.02)
        stopped_in = time.monotonic() - cancelled_at
        assert stopped_in < 1.0, f"the provider generated {stopped_in:.2f} s after the cancel"
        assert stack.sim_stats()["abandoned"] == 1
        time.sleep(1.5)  # a retry, if the worker made one, would have started by now
        calls = [r for r in stack.sim_requests() if r["job_id"] == job_id]
        assert len(calls) == 1
        record = client.status(job_id)
        assert record.status is JobStatus.cancelled
        usage = record.result.usage
        assert usage is not None and usage.prompt_tokens > 0
        assert 0 < usage.completion_tokens < 1500  # what was streamed before the stop
        print(f"provider stopped generating {stopped_in * 1000:.0f} ms after the cancel")
