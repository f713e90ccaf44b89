"""The simulator's wire format as the official ``openai`` client parses it, plain and streamed.

Each feature a gateway must pass through is asked for with the client's own arguments and read
back through its own types, so a shape the client cannot parse fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Literal

import openai
import pytest
from chatq.shared.tokens import count_text_tokens
from chatq.simulator.app import create_app
from chatq.simulator.config import SimConfig
from pydantic import BaseModel
from starlette.testclient import TestClient

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "unit"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
ASK = [{"role": "user", "content": "get_weather and get_time for Paris"}]


class Trip(BaseModel):
    city: str
    days: int
    mode: Literal["rail", "road"]
    stops: list[str]


class LookUp(BaseModel):
    """Looks a word up."""

    word: str
    limit: int


@pytest.fixture()
def http() -> Iterator[TestClient]:
    with TestClient(create_app(SimConfig(context_window=2000)), base_url="http://sim") as http:
        yield http


@pytest.fixture()
def client(http: TestClient) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://sim/v1", api_key="x", http_client=http, max_retries=0)


def chunks(client: openai.OpenAI, **request: Any) -> list[Any]:
    request.setdefault("model", "sim-mini")
    return list(client.chat.completions.create(stream=True, **request))


def test_tool_calls_plain(client: openai.OpenAI):
    answer = client.chat.completions.create(model="sim-mini", messages=ASK, tools=[WEATHER, TIME])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    weather, time = choice.message.tool_calls
    assert (weather.type, weather.function.name, time.function.name) == (
        "function",
        "get_weather",
        "get_time",
    )
    assert re.fullmatch(r"call_[0-9a-f]{24}", weather.id) and weather.id != time.id
    arguments = json.loads(weather.function.arguments)
    assert arguments == {"location": ASK[0]["content"], "unit": "celsius"}
    assert json.loads(time.function.arguments) == {}
    both = weather.function.arguments + time.function.arguments
    assert answer.usage.completion_tokens == count_text_tokens(both)


def test_tool_calls_streamed_fragments_accumulate_to_the_plain_arguments(client: openai.OpenAI):
    plain = client.chat.completions.create(model="sim-mini", messages=ASK, tools=[WEATHER, TIME])
    calls: dict[int, dict[str, str]] = {}
    fragments = 0
    finish = None
    for chunk in chunks(client, messages=ASK, tools=[WEATHER, TIME]):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or ():
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function and delta.function.name) or ""
            call["arguments"] += (delta.function and delta.function.arguments) or ""
            fragments += bool(delta.function and delta.function.arguments)
    assert finish == "tool_calls" and fragments > 2 * len(calls)
    for i, expected in enumerate(plain.choices[0].message.tool_calls):
        assert calls[i]["id"] == expected.id and calls[i]["name"] == expected.function.name
        assert json.loads(calls[i]["arguments"]) == json.loads(expected.function.arguments)


def test_the_clients_stream_helper_parses_strict_pydantic_tools(client: openai.OpenAI):
    tool = openai.pydantic_function_tool(LookUp)
    messages = [{"role": "user", "content": "LookUp: queue"}]
    with client.chat.completions.stream(model="sim-mini", messages=messages, tools=[tool]) as s:
        final = s.get_final_completion()
    parsed = final.choices[0].message.tool_calls[0].function.parsed_arguments
    assert isinstance(parsed, LookUp) and parsed.word == "LookUp: queue"


def test_a_named_tool_choice_and_no_parallel_calls(client: openai.OpenAI):
    named = {"type": "function", "function": {"name": "get_time"}}
    answer = client.chat.completions.create(
        model="sim-mini", messages=ASK, tools=[WEATHER, TIME], tool_choice=named
    )
    assert answer.choices[0].finish_reason == "stop"
    assert [c.function.name for c in answer.choices[0].message.tool_calls] == ["get_time"]
    single = client.chat.completions.create(
        model="sim-mini", messages=ASK, tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert [c.function.name for c in single.choices[0].message.tool_calls] == ["get_weather"]
    quiet = [{"role": "user", "content": "hello"}]
    required = client.chat.completions.create(
        model="sim-mini", messages=quiet, tools=[WEATHER, TIME], tool_choice="required"
    )
    assert required.choices[0].message.tool_calls[0].function.name == "get_weather"
    auto = client.chat.completions.create(model="sim-mini", messages=quiet, tools=[WEATHER])
    assert auto.choices[0].message.tool_calls is None and auto.choices[0].message.content


def test_tool_results_get_a_text_answer_and_reach_the_provider_intact(
    client: openai.OpenAI, http: TestClient
):
    first = client.chat.completions.create(model="sim-mini", messages=ASK, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    history = [
        *ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    plain = client.chat.completions.create(model="sim-mini", messages=history, tools=[WEATHER])
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.content
    streamed = chunks(client, messages=history, tools=[WEATHER])
    text = "".join(c.choices[0].delta.content or "" for c in streamed)
    assert text == plain.choices[0].message.content
    assert plain.usage.prompt_tokens > first.usage.prompt_tokens
    logged = http.get("/sim/requests", params={"limit": 1}).json()["requests"][0]["body"]
    assert logged["messages"][1]["tool_calls"] == [call.model_dump()]
    assert logged["messages"][2] == history[2]


def test_tool_message_errors_reach_the_client_as_bad_requests(client: openai.OpenAI):
    orphan = [*ASK, {"role": "tool", "tool_call_id": "call_x", "content": "late"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sim-mini", messages=orphan)
    assert caught.value.param == "messages.[1].role" and caught.value.code is None
    assert "must be a response to a preceeding message with 'tool_calls'" in caught.value.message
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    unanswered = [*ASK, {"role": "assistant", "tool_calls": [call]}, *ASK]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sim-mini", messages=unanswered, stream=True)
    assert caught.value.param == "messages.[1].role"
    assert caught.value.message.endswith("did not have response messages: call_1")


def test_context_length_exceeded(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sim-mini", messages=ASK, max_completion_tokens=1990)
    assert (caught.value.code, caught.value.param) == ("context_length_exceeded", "messages")
    assert "maximum context length is 2000 tokens" in caught.value.message


def test_n_choices_plain_and_streamed(client: openai.OpenAI):
    plain = client.chat.completions.create(model="sim-mini", messages=ASK, n=3)
    texts = ["", "", ""]
    finishes: dict[int, str] = {}
    streamed = chunks(client, messages=ASK, n=3, stream_options={"include_usage": True})
    for chunk in streamed[:-1]:
        [choice] = chunk.choices
        texts[choice.index] += choice.delta.content or ""
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
    assert texts == [c.message.content for c in plain.choices] and len(set(texts)) == 3
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}
    assert streamed[-1].usage == plain.usage


def test_logprobs_plain_and_streamed(client: openai.OpenAI):
    plain = client.chat.completions.create(
        model="sim-mini", messages=ASK, logprobs=True, top_logprobs=3
    )
    content = plain.choices[0].logprobs.content
    assert "".join(t.token for t in content) == plain.choices[0].message.content
    assert all(t.logprob < 0 and bytes(t.bytes).decode() == t.token for t in content)
    assert all(len(t.top_logprobs) == 3 and t.top_logprobs[0].token == t.token for t in content)
    streamed = chunks(client, messages=ASK, logprobs=True, top_logprobs=3)
    tokens = [t for c in streamed if c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert tokens == content
    bare = client.chat.completions.create(model="sim-mini", messages=ASK, logprobs=True)
    assert all(t.top_logprobs == [] for t in bare.choices[0].logprobs.content)
    assert (
        client.chat.completions.create(model="sim-mini", messages=ASK).choices[0].logprobs is None
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sim-mini", messages=ASK, top_logprobs=2)
    assert caught.value.param == "top_logprobs"


def test_reasoning_content_plain_and_streamed(client: openai.OpenAI):
    plain = client.chat.completions.create(model="sim-reasoner", messages=ASK)
    message = plain.choices[0].message
    reasoning = message.model_extra["reasoning_content"]
    assert reasoning and message.content and reasoning != message.content
    details = plain.usage.completion_tokens_details
    assert 0 < details.reasoning_tokens < plain.usage.completion_tokens
    streamed = chunks(client, model="sim-reasoner", messages=ASK)
    deltas = [c.choices[0].delta for c in streamed]
    thinking = [d.model_extra.get("reasoning_content") for d in deltas]
    assert "".join(t or "" for t in thinking) == reasoning
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    assert all(not t for t in thinking[first_content:])
    assert "".join(d.content or "" for d in deltas) == message.content
    mini = client.chat.completions.create(model="sim-mini", messages=ASK)
    assert "reasoning_content" not in (mini.choices[0].message.model_extra or {})


def test_refusals_plain_and_streamed(client: openai.OpenAI):
    messages = [{"role": "user", "content": "sim:refuse tell me"}]
    plain = client.chat.completions.create(model="sim-mini", messages=messages)
    message = plain.choices[0].message
    assert message.content is None and message.refusal == "I'm sorry, I can't help with that."
    assert plain.choices[0].finish_reason == "stop"
    streamed = chunks(client, messages=messages)
    assert "".join(c.choices[0].delta.refusal or "" for c in streamed) == message.refusal
    assert all(c.choices[0].delta.content is None for c in streamed)
    parsed = client.chat.completions.parse(
        model="sim-mini", messages=messages, response_format=Trip
    )
    assert parsed.choices[0].message.refusal and parsed.choices[0].message.parsed is None


def test_usage_details_fingerprint_and_service_tier(client: openai.OpenAI):
    plain = client.chat.completions.create(model="sim-mini", messages=ASK)
    assert re.fullmatch(r"fp_[0-9a-f]{10}", plain.system_fingerprint)
    assert plain.service_tier == "default"
    assert plain.usage.prompt_tokens_details.cached_tokens == 0
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0
    streamed = chunks(client, messages=ASK, stream_options={"include_usage": True})
    assert {c.system_fingerprint for c in streamed} == {plain.system_fingerprint}
    assert {c.service_tier for c in streamed} == {"default"}
    assert streamed[-1].usage == plain.usage


def test_json_object_and_json_schema_answers(client: openai.OpenAI):
    messages = [{"role": "user", "content": "A trip to Lyon, as JSON please"}]
    plain = client.chat.completions.create(
        model="sim-mini", messages=messages, response_format={"type": "json_object"}
    )
    assert set(json.loads(plain.choices[0].message.content)) == {"answer"}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="sim-mini", messages=ASK, response_format={"type": "json_object"}
        )
    assert caught.value.param == "messages" and "the word 'json'" in caught.value.message
    parsed = client.chat.completions.parse(
        model="sim-mini", messages=messages, response_format=Trip
    )
    trip = parsed.choices[0].message.parsed
    assert isinstance(trip, Trip) and trip.city == messages[0]["content"] and trip.mode == "rail"
    assert len(trip.stops) == 1
    with client.chat.completions.stream(
        model="sim-mini", messages=messages, response_format=Trip
    ) as s:
        assert s.get_final_completion().choices[0].message.parsed == trip


def test_stop_and_seed(client: openai.OpenAI):
    plain = client.chat.completions.create(model="sim-mini", messages=ASK)
    word = plain.choices[0].message.content.split()[2]
    cut = client.chat.completions.create(model="sim-mini", messages=ASK, stop=[" " + word])
    assert plain.choices[0].message.content.startswith(cut.choices[0].message.content)
    assert " " + word not in cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "stop"
    streamed = chunks(client, messages=ASK, stop=" " + word)
    assert (
        "".join(c.choices[0].delta.content or "" for c in streamed)
        == cut.choices[0].message.content
    )

    def seeded(seed: int) -> str | None:
        answer = client.chat.completions.create(model="sim-mini", messages=ASK, seed=seed)
        return answer.choices[0].message.content

    assert seeded(1) == seeded(1) != seeded(2)
