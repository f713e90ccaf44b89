"""The simulator's HTTP app in OpenAI's wire format, through Starlette's test client."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from simulator.app import create_app
from simulator.config import SimConfig

MESSAGES = [{"role": "user", "content": "hello"}]


def client(clock=None, **config) -> TestClient:
    app = create_app(SimConfig(**config), clock=clock or (lambda: 0.0))
    return TestClient(app, raise_server_exceptions=False)


def post(c: TestClient, **body):
    return c.post("/v1/chat/completions", json={"model": "sim-mini", "messages": MESSAGES, **body})


def sse_chunks(response) -> list:
    lines = [line for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]) for line in lines]


def test_plain_completion_shape():
    body = post(client(), max_tokens=5).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5


def test_stream_shape_and_content_match_plain():
    c = client()
    plain = post(c).json()
    chunks = sse_chunks(post(c, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(
        ch["choices"][0]["delta"].get("content", "") for ch in chunks[:-1] if ch["choices"]
    )
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"] == plain["usage"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "sim-mini", "messages": []}, 400),
        ({"model": "sim-mini", "messages": [{"role": "robot", "content": "x"}]}, 400),
        ({"model": "sim-mini", "messages": MESSAGES, "max_tokens": 0}, 400),
        ({"messages": MESSAGES}, 400),
        ({"model": "nope", "messages": MESSAGES}, 404),
    ],
)
def test_invalid_requests(body, status):
    response = client(models=("sim-mini",)).post("/v1/chat/completions", json=body)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_malformed_json():
    response = client().post("/v1/chat/completions", content=b"{nope")
    assert response.status_code == 400


def test_rate_limit_answers_429_with_retry_after():
    now = [0.0]
    c = client(clock=lambda: now[0], rpm=60)
    assert post(c).status_code == 200
    refused = post(c)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert 900 <= int(refused.headers["retry-after-ms"]) <= 1000
    assert refused.json()["error"]["type"] == "rate_limit_error"
    now[0] = 1.0
    assert post(c).status_code == 200
    stats = c.get("/sim/stats").json()
    assert stats["requests"] == 3 and stats["rate_limited"] == 1
    log = c.get("/sim/requests").json()["requests"]
    assert [e["outcome"] for e in log] == ["ok", "rate_limited", "ok"]
    assert log[1]["retry_after"] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["500", "503"])
def test_injected_server_errors(kind):
    c = client(fail_rate=1.0, faults=(kind,))
    assert post(c).status_code == int(kind)
    assert c.get("/sim/stats").json()[f"faults_{kind}"] == 1


def test_injected_cut_drops_the_stream_before_done():
    c = client(fail_rate=1.0, faults=("cut",))
    with pytest.raises(Exception):  # noqa: B017 - the connection breaks; the kind varies
        chunks = sse_chunks(post(c, stream=True))
        assert "[DONE]" not in chunks
        raise RuntimeError("cut")


def test_job_id_header_is_logged_and_reset_clears():
    c = client()
    c.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers={"X-Chatq-Job-Id": "job_1", "Authorization": "Bearer sk-secret"},
    )
    entry = c.get("/sim/requests").json()["requests"][0]
    assert entry["job_id"] == "job_1"
    assert "sk-secret" not in json.dumps(entry)
    c.post("/sim/reset")
    assert c.get("/sim/stats").json()["requests"] == 0


def test_models_and_health():
    c = client()
    assert c.get("/health").json() == {"status": "ok"}
    assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["sim-mini", "sim-large"]
