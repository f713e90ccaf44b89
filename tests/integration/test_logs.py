"""JSON logs of the gateway and a worker name the job and the request on every line about a
job, and never carry the user's text or the provider's key."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

SECRET = "the user's private words 7f3a"
PROVIDER_KEY = "sk-provider-key-that-must-not-be-logged"


logged = stack_fixture(
    scope="function",
    gateway=True,
    sim_args=["--api-keys", PROVIDER_KEY],
    extra_env={
        "CHATQ_PROVIDER_API_KEY": PROVIDER_KEY,
        "CHATQ_LOG_FORMAT": "json",
        "CHATQ_LOG_LEVEL": "INFO",
    },
    from_fixtures=lambda tmp_path: {"log_dir": tmp_path},
)


def test_json_logs_carry_job_and_request_ids_but_no_user_text(logged, tmp_path: Path):
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": SECRET}]}
    reply = requests.post(
        f"{logged.gateway_url}/chat/completions",
        json=body,
        headers={"X-Request-Id": "req-from-test-1"},
        timeout=30,
    )
    assert reply.status_code == 200
    assert reply.headers["X-Request-Id"] == "req-from-test-1"
    job_id = reply.headers["X-Chatq-Job-Id"]

    def logs_to_the_end() -> str | None:
        """The logs, once the worker's last line about the job (its end) is in its file."""
        texts = [path.read_text() for path in tmp_path.glob("*.log")]
        whole_lines = all(text.endswith("\n") for text in texts if text)
        ended = any(f"job {job_id} done in" in text for text in texts)
        return "".join(texts) if ended and whole_lines else None

    text = eventually(logs_to_the_end, timeout=10, what="no end of the job in the worker's log")
    assert SECRET not in text and PROVIDER_KEY not in text
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    about_job = [e for e in entries if job_id in e["message"]]
    assert {e["logger"] for e in about_job} >= {"chatq.gateway", "chatq.worker"}
    assert all(e["request_id"] == "req-from-test-1" for e in about_job), about_job
    assert any(e["job_id"] == job_id for e in about_job if e["logger"] == "chatq.worker")
