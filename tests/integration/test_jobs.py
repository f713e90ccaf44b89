"""The async job API: submit, poll, cancel, and stream by SSE or WebSocket from a client that
connects after the job started; signed webhooks, retried."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from chatq.shared.webhooks import SIGNATURE_HEADER, verify
from websockets.sync.client import connect

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

WEBHOOK_SECRET = "whsec-test"
STREAMED = {
    "model": "sim-mini",
    "messages": [{"role": "user", "content": "Stream slowly please"}],
    "max_tokens": 30,
    "stream": True,
}


stack = stack_fixture(
    gateway=True,
    sim_args=["--ttft-ms", "100", "--tokens-per-s", "40"],
    extra_env={
        "CHATQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CHATQ_WEBHOOK_ALLOW_HTTP": "true",  # the test's receiver, on loopback
        "CHATQ_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    },
)


@pytest.fixture(scope="module")
def url(stack) -> str:
    return stack.gateway_url


def submit(url: str, body: dict) -> str:
    """Submits the job, with a prompt never sent before: no answer comes from the cache."""
    body = {**body, "messages": [{"role": "user", "content": f"Stream slowly, {uuid.uuid4()}"}]}
    response = requests.post(f"{url}/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return response.json()["id"]


def wait_until_streaming(stack, job_id: str) -> None:
    """Returns once the job has published a few deltas, so a client connecting now is late."""
    redis = stack.settings_redis()
    eventually(lambda: redis.xlen(f"chatq:events:{job_id}") >= 5 or None, every=0.02)


def final(url: str, job_id: str) -> dict:
    def ended() -> dict | None:
        job = requests.get(f"{url}/jobs/{job_id}", timeout=10).json()
        return job if job["status"] in ("done", "failed", "cancelled") else None

    return eventually(ended, timeout=30, every=0.05)


def test_a_job_is_submitted_then_polled_to_its_answer(url):
    job_id = submit(url, {**STREAMED, "stream": False, "max_tokens": 5})
    job = final(url, job_id)
    assert job["status"] == "done"
    assert job["result"]["object"] == "chat.completion"
    assert job["result"]["choices"][0]["message"]["content"]


def test_sse_from_a_late_client_carries_every_delta(stack, url):
    job_id = submit(url, STREAMED)
    wait_until_streaming(stack, job_id)
    pieces = []
    with requests.get(f"{url}/jobs/{job_id}/events", stream=True, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines(decode_unicode=True):
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                break
            chunk = json.loads(line[6:])
            if chunk.get("choices"):
                pieces.append(chunk["choices"][0]["delta"].get("content") or "")
    answer = final(url, job_id)["result"]["choices"][0]["message"]["content"]
    assert "".join(pieces) == answer and len(pieces) > 5


def test_a_websocket_from_a_late_client_carries_every_delta(stack, url):
    job_id = submit(url, STREAMED)
    wait_until_streaming(stack, job_id)
    ws_url = url.replace("http://", "ws://") + f"/jobs/{job_id}/ws"
    pieces = []
    with connect(ws_url) as socket:
        while (frame := socket.recv(timeout=30)) != "[DONE]":
            chunk = json.loads(frame)
            if chunk.get("choices"):
                pieces.append(chunk["choices"][0]["delta"].get("content") or "")
    answer = final(url, job_id)["result"]["choices"][0]["message"]["content"]
    assert "".join(pieces) == answer


def sse_events(url: str, job_id: str, **headers: str) -> list[tuple[str | None, str]]:
    """The stream's events as (id, data), up to and with ``[DONE]``."""
    events: list[tuple[str | None, str]] = []
    event_id = None
    with requests.get(
        f"{url}/jobs/{job_id}/events", headers=headers, stream=True, timeout=30
    ) as response:
        assert response.status_code == 200, response.text
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                events.append((event_id, line[6:]))
                event_id = None
                if line == "data: [DONE]":
                    break
    return events


def test_a_client_resuming_with_last_event_id_gets_exactly_the_chunks_after_it(stack, url):
    job_id = submit(url, STREAMED)
    wait_until_streaming(stack, job_id)
    first = sse_events(url, job_id)
    numbered = [(i, data) for i, data in first if i is not None]
    assert [int(i) for i, _ in numbered] == list(range(1, len(numbered) + 1))
    assert first[-1] == (None, "[DONE]") and len(numbered) > 5
    resumed = sse_events(url, job_id, **{"Last-Event-ID": "4"})
    assert resumed == [*first[4:]]
    ws_url = url.replace("http://", "ws://") + f"/jobs/{job_id}/ws?last_event_id=4"
    with connect(ws_url) as socket:
        frames = []
        while (frame := socket.recv(timeout=30)) != "[DONE]":
            frames.append(frame)
    assert [json.loads(f) for f in frames] == [json.loads(d) for _, d in numbered[4:]]


@pytest.mark.parametrize("value", ["abc", "-1", "1" * 40, "\u00b2"])
def test_a_malformed_last_event_id_is_refused_naming_the_header(url, value):
    job_id = submit(url, {**STREAMED, "max_tokens": 4})
    reply = requests.get(
        f"{url}/jobs/{job_id}/events", headers={"Last-Event-ID": value}, timeout=10
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "Last-Event-ID" and "Last-Event-ID" in error["message"]
    assert "1" * 20 not in error["message"]


def test_a_job_can_be_cancelled(url):
    job_id = submit(url, {**STREAMED, "max_tokens": 400})
    cancelled = requests.delete(f"{url}/jobs/{job_id}", timeout=10).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["code"] == "job_cancelled"


def test_unknown_jobs_are_404(url):
    response = requests.get(f"{url}/jobs/job_nope", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


class Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the first call, then 200: the webhook must be retried."""

    calls: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.calls.append((dict(self.headers), body))
        self.send_response(503 if len(Receiver.calls) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_webhook_is_signed_and_retried_until_delivered(stack, url):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_port}/hook"
        job_id = submit(url, {**STREAMED, "stream": False, "max_tokens": 5, "webhook_url": hook})
        eventually(lambda: len(Receiver.calls) >= 2 or None, every=0.05, what="no 2 calls")
    finally:
        server.shutdown()
    record = f"chatq:job:{job_id}"
    eventually(
        lambda: stack.settings_redis().hget(record, "webhook") == "delivered" or None, every=0.05
    )
    headers, body = Receiver.calls[-1]
    assert verify(WEBHOOK_SECRET, headers[SIGNATURE_HEADER], body)
    assert not verify("another-secret", headers[SIGNATURE_HEADER], body)
    event = json.loads(body)
    assert event["type"] == "job.done" and event["data"]["job_id"] == job_id
    assert event["data"]["result"]["completion"]["choices"][0]["message"]["content"]
