"""The official `openai` package against the gateway, and bad input refused before the queue."""

from __future__ import annotations

import openai
import pytest
import requests

from tests.support.stacks import stack_fixture

# The plain gateway stack, booted once for this module and test_openapi_fuzz.
gateway_stack = stack_fixture(shared="gateway", gateway=True)


@pytest.fixture(scope="module")
def base_url(gateway_stack) -> str:
    return gateway_stack.gateway_url


@pytest.fixture(scope="module")
def client(gateway_stack) -> openai.OpenAI:
    return gateway_stack.openai()


MESSAGES = [{"role": "user", "content": "Hello gateway"}]


def test_plain_completion(client):
    reply = client.chat.completions.create(model="sim-mini", messages=MESSAGES, max_tokens=12)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_completion_matches_plain(client):
    plain = client.chat.completions.create(model="sim-mini", messages=MESSAGES, max_tokens=12)
    chunks = list(
        client.chat.completions.create(
            model="sim-mini",
            messages=MESSAGES,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_session_id_rides_in_extra_body(client):
    reply = client.chat.completions.create(
        model="sim-mini", messages=MESSAGES, max_tokens=4, extra_body={"session_id": "conv-1"}
    )
    assert reply.choices[0].message.content


def test_models_are_listed(client):
    assert {m.id for m in client.models.list()} == {"sim-mini", "sim-large"}


def test_health(base_url):
    assert requests.get(base_url.removesuffix("/v1") + "/health", timeout=5).json() == {
        "status": "ok"
    }


@pytest.mark.parametrize(
    ("kwargs", "status", "param_hint"),
    [
        ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
        ({"messages": []}, 400, "messages"),
        ({"max_tokens": -1}, 400, "max_tokens"),
        ({"model": "no-such-model"}, 404, "model"),
    ],
)
def test_invalid_input_is_refused_and_nothing_is_enqueued(
    client, gateway_stack, kwargs, status, param_hint
):
    redis = gateway_stack.settings_redis()
    jobs_before = len(redis.keys("chatq:job:*"))
    calls_before = gateway_stack.sim_stats()["requests"]
    request = {"model": "sim-mini", "messages": MESSAGES, **kwargs}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**request)
    error = caught.value
    assert error.status_code == status
    body = error.body
    assert set(body) >= {"message", "type", "param", "code"}
    assert param_hint in body["message"]
    assert len(redis.keys("chatq:job:*")) == jobs_before
    assert redis.llen("chatq.interactive") == 0
    assert gateway_stack.sim_stats()["requests"] == calls_before


def test_malformed_json_gets_an_openai_error(base_url, gateway_stack):
    redis = gateway_stack.settings_redis()
    jobs_before = len(redis.keys("chatq:job:*"))
    response = requests.post(
        f"{base_url}/chat/completions",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"]
    assert len(redis.keys("chatq:job:*")) == jobs_before
