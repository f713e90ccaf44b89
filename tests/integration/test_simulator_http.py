"""The simulator as a real server process, spoken to by the official `openai` package."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from chatq.processes import free_port
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Why queue chat jobs?"},
]


@pytest.fixture(scope="module")
def sim_url(request: pytest.FixtureRequest) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatq.simulator",
            "--port",
            str(port),
            "--models",
            "sim-mini,sim-large",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    request.addfinalizer(stop)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool | None:
        if process.poll() is not None:
            pytest.fail(f"the simulator exited: {process.stderr.read().decode()}")
        try:
            return requests.get(f"{base}/health", timeout=1).ok or None
        except requests.ConnectionError:
            return None

    eventually(healthy, timeout=30, every=0.05, what="the simulator not answering /health")
    yield base


@pytest.fixture()
def client(sim_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{sim_url}/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


def test_plain_completion(client: openai.OpenAI):
    completion = client.chat.completions.create(model="sim-mini", messages=MESSAGES, max_tokens=6)
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "sim-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_streamed_content_equals_the_plain_content(client: openai.OpenAI):
    plain = client.chat.completions.create(model="sim-large", messages=MESSAGES)
    stream = client.chat.completions.create(
        model="sim-large", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"] == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage


def test_errors_reach_the_sdk_as_its_own_exceptions(client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="gpt-unknown", messages=MESSAGES)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="sim-mini", messages=[])


def test_models_and_the_request_log(client: openai.OpenAI, sim_url: str):
    assert [m.id for m in client.models.list()] == ["sim-mini", "sim-large"]
    client.chat.completions.create(
        model="sim-mini", messages=MESSAGES, extra_headers={"X-Chatq-Job-Id": "job-42"}
    )
    last = requests.get(f"{sim_url}/sim/requests?limit=1", timeout=5).json()["requests"]
    assert last[0]["job_id"] == "job-42" and last[0]["outcome"] == "ok"
    assert last[0]["body"]["messages"] == MESSAGES


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def test_a_tool_round_trip_over_http_reaches_the_provider_intact(
    client: openai.OpenAI, sim_url: str
):
    ask = [{"role": "user", "content": "get_weather in Oslo"}]
    stream = client.chat.completions.create(
        model="sim-mini", messages=ask, tools=[WEATHER], stream=True
    )
    call_id, arguments, finish = "", "", None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or ():
            call_id += delta.id or ""
            arguments += (delta.function and delta.function.arguments) or ""
    assert finish == "tool_calls" and json.loads(arguments) == {"location": ask[0]["content"]}
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    history = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
    ]
    answer = client.chat.completions.create(model="sim-mini", messages=history, tools=[WEATHER])
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content
    logged = requests.get(f"{sim_url}/sim/requests?limit=1", timeout=5).json()["requests"][0]
    assert logged["body"]["messages"] == history and logged["outcome"] == "ok"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sim-mini", messages=history[:2], tools=[WEATHER])
    assert caught.value.param == "messages.[1].role"
