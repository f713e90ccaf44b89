"""A cancel reaches the provider: the worker running the job shuts its call down, so the
provider stops generating within a second, and the job ends cancelled once."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
import urllib3
from chatq.shared.jobs import JobStatus

from tests.support.batches import batch_ended, cancel_batch, start_batch
from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

# Answers of up to 1500 tokens at 40 a second: calls of many seconds, unless stopped.
LONG_ANSWERS = ["--ttft-ms", "100", "--tokens-per-s", "40", "--max-reply-tokens", "1500"]
stack = stack_fixture(gateway=True, sim_args=LONG_ANSWERS)
# The same provider streaming over a WebSocket (CHATQ_PROVIDER_TRANSPORT=websocket).
websocket_stack = stack_fixture(
    gateway=True, sim_args=LONG_ANSWERS, extra_env={"CHATQ_PROVIDER_TRANSPORT": "websocket"}
)


def generating(stack) -> int:
    return stack.sim_stats()["active"]


@pytest.mark.parametrize("transport", ["stack", "websocket_stack"])
def test_cancelling_a_streaming_job_stops_the_providers_generation_within_a_second(
    transport, request
):
    stack = request.getfixturevalue(transport)
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


def test_a_deadline_passing_mid_call_stops_the_call_and_keeps_the_usage(stack):
    with stack.client() as client:
        job_id = client.submit(
            "A long answer with a deadline",
            stream=True,
            max_tokens=1500,
            cache=False,
            deadline_s=0.7,
        )
        result = client.result(job_id, timeout=30)
        ended_at = time.time()
        eventually(lambda: generating(stack) == 0 or None, timeout=5, every=0.02)
        stopped_at = time.time()
    assert result.status is JobStatus.cancelled
    assert result.error.code == "deadline_exceeded"
    assert 0 < result.usage.completion_tokens < 1500
    deadline = result.timings.created_at + 0.7
    assert ended_at - deadline < 1.0 and stopped_at - deadline < 1.0


def test_cancelling_a_batch_stops_the_calls_of_its_lines_in_flight(stack, tmp_path):
    lines = [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "sim-mini",
                "max_tokens": 1500,
                "stream": True,
                "messages": [{"role": "user", "content": f"long line {i} {time.time()}"}],
            },
        }
        for i in range(4)
    ]
    batch = start_batch(stack.gateway_url, lines)
    eventually(lambda: generating(stack) == 4 or None, timeout=30, every=0.05)
    cancelled_at = time.monotonic()
    cancel_batch(stack.gateway_url, batch["id"])
    eventually(lambda: generating(stack) == 0 or None, timeout=10, every=0.02)
    stopped_in = time.monotonic() - cancelled_at
    assert stopped_in < 1.0, f"the provider generated {stopped_in:.2f} s after the cancel"
    final = batch_ended(stack.gateway_url, batch["id"])
    assert final["status"] == "cancelled"
    assert final["request_counts"]["completed"] == 0


def _long_chat(max_tokens: int) -> dict:
    return {
        "model": "sim-mini",
        "stream": True,
        "max_tokens": max_tokens,
        "cache": False,
        "messages": [{"role": "user", "content": f"A long answer {time.time()}"}],
    }


def _stream_then_leave(stack, body: dict, headers: dict[str, str]) -> str:
    """Starts a chat stream through the gateway, reads a few chunks and hangs up; the job."""
    url = f"{stack.gateway_url}/chat/completions"
    with requests.post(url, json=body, headers=headers, stream=True, timeout=10) as reply:
        lines = reply.iter_lines()
        for _ in range(5):
            next(lines)
        return reply.headers["X-Chatq-Job-Id"]


def test_a_stream_whose_client_leaves_is_cancelled_and_stops_the_provider(stack):
    job_id = _stream_then_leave(stack, _long_chat(1500), {})
    left_at = time.monotonic()
    eventually(lambda: generating(stack) == 0 or None, timeout=5, every=0.02)
    stopped_in = time.monotonic() - left_at
    with stack.client() as client:
        record = eventually(lambda: r if (r := client.status(job_id)).status.is_terminal else None)
    assert record.status is JobStatus.cancelled
    assert 0 < record.result.usage.completion_tokens < 1500
    assert stopped_in < 1.0, f"the provider generated {stopped_in:.2f} s after the client left"


def test_a_stream_with_an_idempotency_key_finishes_and_its_retry_gets_the_answer(stack):
    body, headers = _long_chat(40), {"Idempotency-Key": f"leave-{time.time()}"}
    job_id = _stream_then_leave(stack, body, headers)
    with stack.client() as client:
        result = client.result(job_id, timeout=30)
    assert result.status is JobStatus.done
    cache = {"cache": body.pop("cache")}
    retry = stack.openai().chat.completions.create(**body, extra_body=cache, extra_headers=headers)
    text = "".join(c.choices[0].delta.content or "" for c in retry if c.choices)
    assert text == result.completion.choices[0].message.content
    assert len([r for r in stack.sim_requests() if r["job_id"] == job_id]) == 1


def test_a_chat_whose_client_leaves_before_its_whole_answer_is_cancelled(stack):
    """The client of an unstreamed chat hangs up while the answer (1500 tokens at 40 a
    second) is made: the job is cancelled at once and its call stopped."""
    body = {**_long_chat(1500), "stream": False}
    host, port = urllib3.util.parse_url(stack.gateway_url).netloc.split(":")
    payload = json.dumps(body).encode()
    with socket.create_connection((host, int(port)), timeout=10) as client_socket:
        client_socket.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        asked = body["messages"][0]["content"]
        sent = eventually(lambda: _sim_request_of(stack, asked), timeout=10, every=0.02)
    left_at = time.time()
    with stack.client() as client:
        record = eventually(
            lambda: r if (r := client.status(sent["job_id"])).status.is_terminal else None,
            timeout=10,
            every=0.02,
        )
    assert record.status is JobStatus.cancelled
    assert record.result.timings.finished_at - left_at < 1.0


def _sim_request_of(stack, text: str) -> dict | None:
    """The provider's record of the call that asked ``text``, once it came."""
    for entry in stack.sim_requests():
        messages = (entry.get("body") or {}).get("messages") or []
        if messages and messages[-1].get("content") == text:
            return entry
    return None
