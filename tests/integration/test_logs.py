"""JSON logs of the gateway and a worker name the job and the request on every line about a
job, and never carry the user's text or the provider's key."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests
from chatq.shared.settings import Settings
from redis import Redis

from chatq.processes import free_port, stop
from chatq.stack import start_gateway, start_simulator, start_workers

SECRET = "the user's private words 7f3a"
PROVIDER_KEY = "sk-provider-key-that-must-not-be-logged"


def test_json_logs_carry_job_and_request_ids_but_no_user_text(redis_server, tmp_path: Path):
    redis_url = f"{redis_server.rsplit('/', 1)[0]}/14"
    Redis.from_url(redis_url).flushdb()
    sim = start_simulator(free_port(), ["--api-keys", PROVIDER_KEY])
    env = {
        "CHATQ_REDIS_URL": redis_url,
        "CHATQ_PROVIDER_BASE_URL": sim.address,
        "CHATQ_PROVIDER_API_KEY": PROVIDER_KEY,
        "CHATQ_LOG_FORMAT": "json",
        "CHATQ_LOG_LEVEL": "INFO",
        "CHATQ_TASK_EVENTS": "false",
    }
    settings = Settings(_env_file=None, redis_url=redis_url, provider_base_url=sim.address)
    parts = [sim]
    try:
        parts += start_workers(1, settings, env, log_dir=tmp_path)
        gateway = start_gateway("127.0.0.1", free_port(), env, log_dir=tmp_path)
        parts.append(gateway)
        body = {"model": "sim-mini", "messages": [{"role": "user", "content": SECRET}]}
        reply = requests.post(
            f"{gateway.address}/chat/completions",
            json=body,
            headers={"X-Request-Id": "req-from-test-1"},
            timeout=30,
        )
        assert reply.status_code == 200
        assert reply.headers["X-Request-Id"] == "req-from-test-1"
        job_id = reply.headers["X-Chatq-Job-Id"]
        time.sleep(0.5)  # let the worker's last line reach its file
    finally:
        stop(parts)
    text = "\n".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert SECRET not in text and PROVIDER_KEY not in text
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    about_job = [e for e in entries if job_id in e["message"]]
    assert {e["logger"] for e in about_job} >= {"chatq.gateway", "chatq.worker"}
    assert all(e["request_id"] == "req-from-test-1" for e in about_job), about_job
    assert any(e["job_id"] == job_id for e in about_job if e["logger"] == "chatq.worker")
