"""Locust load test of the gateway: plain and streamed chat completions.

locust -f loadtest/locustfile.py --headless -u 100 -r 20 -t 60s --host http://127.0.0.1:8000
"""

from __future__ import annotations

import json
import time

from locust import HttpUser, between, task

BODY = {"model": "sim-mini", "max_tokens": 32}


class ChatUser(HttpUser):
    wait_time = between(0.1, 0.5)

    @task(3)
    def plain(self) -> None:
        body = {**BODY, "messages": [{"role": "user", "content": "Hello from locust"}]}
        self.client.post("/v1/chat/completions", json=body, name="chat plain")

    @task(1)
    def streamed(self) -> None:
        body = {**BODY, "stream": True, "messages": [{"role": "user", "content": "Stream please"}]}
        started = time.perf_counter()
        with self.client.post(
            "/v1/chat/completions", json=body, stream=True, name="chat stream", catch_response=True
        ) as response:
            first = None
            for line in response.iter_lines():
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    chunk = json.loads(line[6:])
                    if (
                        first is None
                        and chunk.get("choices")
                        and chunk["choices"][0]["delta"].get("content")
                    ):
                        first = time.perf_counter()
                        self.environment.events.request.fire(
                            request_type="TTFT",
                            name="chat stream first token",
                            response_time=(first - started) * 1000,
                            response_length=0,
                            exception=None,
                        )
            response.success()
