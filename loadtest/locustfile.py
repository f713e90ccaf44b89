"""Locust load test of the gateway: plain and streamed chats, multi-turn sessions, async jobs
and batch submissions. Run it headless against `chatq up` (see the README):

    .venv/bin/locust -f loadtest/locustfile.py --headless -u 100 -r 20 -t 60s \\
        --host http://127.0.0.1:8000 --only-summary

Streams report their time to first token as an extra row, "TTFT chat stream".
"""

from __future__ import annotations

import io
import json
import random
import time
import uuid

from locust import HttpUser, between, task

MODEL = "sim-mini"
QUESTIONS = [
    "What is a job queue good for?",
    "How do I reset my password?",
    "Where is my parcel?",
    "Summarise the benefits of rate limiting.",
    "Tell me a short story about a robot.",
]


def chat_body(text: str, **extra: object) -> dict:
    return {
        "model": MODEL,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


class ChatUser(HttpUser):
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.session_id = f"locust-{uuid.uuid4().hex[:12]}"
        self.turns = 0

    @task(6)
    def plain(self) -> None:
        body = chat_body(f"{random.choice(QUESTIONS)} ({uuid.uuid4().hex[:6]})")
        self.client.post("/v1/chat/completions", json=body, name="chat plain")

    @task(3)
    def streamed(self) -> None:
        body = chat_body(random.choice(QUESTIONS) + f" #{uuid.uuid4().hex[:6]}", stream=True)
        started = time.perf_counter()
        with self.client.post(
            "/v1/chat/completions", json=body, stream=True, name="chat stream", catch_response=True
        ) as response:
            first, done = None, False
            for line in response.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    done = True
                    break
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    response.failure(f"stream error: {chunk['error']}")
                    return
                delta = chunk["choices"][0]["delta"] if chunk.get("choices") else {}
                if first is None and delta.get("content"):
                    first = time.perf_counter()
                    self.environment.events.request.fire(
                        request_type="TTFT",
                        name="chat stream",
                        response_time=(first - started) * 1000,
                        response_length=0,
                        exception=None,
                        context={},
                    )
            if not done:
                response.failure("stream ended without [DONE]")
            else:
                response.success()

    @task(2)
    def session_turn(self) -> None:
        if self.turns >= 8:  # a new conversation now and then
            self.session_id, self.turns = f"locust-{uuid.uuid4().hex[:12]}", 0
        body = chat_body(
            f"Turn {self.turns}: {random.choice(QUESTIONS)}", session_id=self.session_id
        )
        self.client.post("/v1/chat/completions", json=body, name="chat session turn")
        self.turns += 1

    @task(1)
    def async_job(self) -> None:
        submitted = self.client.post(
            "/v1/jobs", json=chat_body("An async question"), name="job submit"
        )
        if submitted.status_code != 202:
            return
        job_id = submitted.json()["id"]
        for _ in range(50):
            job = self.client.get(f"/v1/jobs/{job_id}", name="job poll").json()
            if job["status"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.1)

    @task(1)
    def batch_submit(self) -> None:
        lines = [
            json.dumps(
                {
                    "custom_id": f"r{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": chat_body(f"batch line {i}"),
                }
            )
            for i in range(5)
        ]
        upload = self.client.post(
            "/v1/files",
            files={"file": ("batch.jsonl", io.BytesIO("\n".join(lines).encode()))},
            data={"purpose": "batch"},
            name="batch file upload",
        )
        if upload.status_code != 200:
            return
        self.client.post(
            "/v1/batches",
            json={
                "input_file_id": upload.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            name="batch create",
        )
