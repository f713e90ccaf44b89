"""chatq is lossless: each case goes with the official `openai` client straight to the provider
(the simulator) and through the gateway, and the parsed objects must be equal, ids and
``created`` aside. Tool calls, choices, logprobs, reasoning, refusals, usage details,
fingerprints and the provider's own errors all reach the caller as the provider sent them."""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import requests

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

REASONER = "sim-reasoner"
_serial = itertools.count()


wire_stack = stack_fixture(
    gateway=True, extra_env={"CHATQ_MODELS": f"sim-mini,{REASONER}", "CHATQ_PROVIDER_MAX_N": "8"}
)


@pytest.fixture(scope="module")
def direct(wire_stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=wire_stack.sim_url, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def via(wire_stack) -> openai.OpenAI:
    return wire_stack.openai()


def unique(text: str) -> str:
    """A prompt no other case sends: each case's answer is its own provider call's."""
    return f"{text} (case {next(_serial)})"


def weather_tools() -> list[dict[str, Any]]:
    def tool(name: str, properties: dict[str, Any]) -> dict[str, Any]:
        parameters = {"type": "object", "properties": properties, "required": [*properties]}
        return {"type": "function", "function": {"name": name, "parameters": parameters}}

    return [
        tool("get_weather", {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}),
        tool("get_time", {"zone": {"type": "string"}}),
    ]


def parsed(obj: Any) -> Any:
    """A parsed object (or list of chunks) as plain data, ids and ``created`` aside."""
    if isinstance(obj, list):
        return [parsed(item) for item in obj]
    data = obj.model_dump()
    data.pop("id", None)
    data.pop("created", None)
    return data


def both(direct: openai.OpenAI, via: openai.OpenAI, **request: Any) -> tuple[Any, Any]:
    """The same request straight to the provider and through chatq: their parsed answers."""

    def ask(client: openai.OpenAI) -> Any:
        answer = client.chat.completions.create(**request)
        return parsed(list(answer)) if request.get("stream") else parsed(answer)

    return ask(direct), ask(via)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_plain_text(direct, via):
    straight, through = both(direct, via, model="sim-mini", messages=user(unique("Hello")))
    assert straight == through
    assert straight["system_fingerprint"] and straight["usage"]["prompt_tokens_details"]


def test_two_parallel_tool_calls(direct, via):
    messages = user(unique("Use get_weather and get_time for Paris"))
    straight, through = both(
        direct, via, model="sim-mini", messages=messages, tools=weather_tools()
    )
    assert straight == through
    calls = straight["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert straight["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_calls_streamed_in_fragments(direct, via):
    messages = user(unique("Use get_weather and get_time for Rome"))
    straight, through = both(
        direct, via, model="sim-mini", messages=messages, tools=weather_tools(), stream=True
    )
    assert straight == through
    fragments = [
        call
        for chunk in straight
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or ()
    ]
    assert len(fragments) > 4  # each call's arguments came in several pieces


def test_a_tool_result_turn_reaches_the_provider_intact(direct, via, wire_stack):
    question = user(unique("Use get_weather for Oslo"))
    first = direct.chat.completions.create(
        model="sim-mini", messages=question, tools=weather_tools()
    )
    call = first.choices[0].message.tool_calls[0]
    messages = [
        *question,
        first.choices[0].message.model_dump(exclude_none=False),
        {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 4}'},
    ]
    wire_stack.sim_reset()
    straight, through = both(
        direct, via, model="sim-mini", messages=messages, tools=weather_tools()
    )
    assert straight == through
    sent_direct, sent_via = (r["body"]["messages"] for r in wire_stack.sim_requests())
    assert sent_via == sent_direct == messages


def test_n_choices(direct, via):
    straight, through = both(
        direct, via, model="sim-mini", messages=user(unique("Three ideas")), n=3, temperature=1
    )
    assert straight == through
    assert [c["index"] for c in straight["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in straight["choices"]}) == 3


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs(direct, via, stream):
    straight, through = both(
        direct,
        via,
        model="sim-mini",
        messages=user(unique("Say something")),
        logprobs=True,
        top_logprobs=2,
        stream=stream,
    )
    assert straight == through
    first = straight[1]["choices"][0] if stream else straight["choices"][0]
    assert first["logprobs"]["content"][0]["top_logprobs"]


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_content(direct, via, stream):
    straight, through = both(
        direct, via, model=REASONER, messages=user(unique("Why is the sky blue?")), stream=stream
    )
    assert straight == through
    text = str(straight)
    assert "reasoning_content" in text


@pytest.mark.parametrize("stream", [False, True])
def test_a_refusal(direct, via, stream):
    straight, through = both(
        direct, via, model="sim-mini", messages=user(unique("sim:refuse this")), stream=stream
    )
    assert straight == through
    if stream:
        said = "".join(c["choices"][0]["delta"]["refusal"] or "" for c in straight if c["choices"])
    else:
        said = straight["choices"][0]["message"]["refusal"]
    assert said.startswith("I'm sorry")


def test_usage_details_with_include_usage(direct, via):
    straight, through = both(
        direct,
        via,
        model="sim-mini",
        messages=user(unique("Count with me")),
        stream=True,
        stream_options={"include_usage": True},
    )
    assert straight == through
    assert straight[-1]["choices"] == [] and straight[-1]["usage"]["completion_tokens_details"]
    assert all(chunk["usage"] is None for chunk in straight[:-1])


def test_a_providers_400_reaches_the_caller_with_its_code_and_param(direct, via):
    def refusal(client: openai.OpenAI) -> tuple[int, Any]:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="sim-mini", messages=user(unique("Long")), max_completion_tokens=500_000
            )
        return caught.value.status_code, caught.value.body

    straight, through = refusal(direct), refusal(via)
    assert straight == through
    assert straight[1]["code"] == "context_length_exceeded" and straight[1]["param"] == "messages"


def test_max_completion_tokens_is_honoured(direct, via):
    straight, through = both(
        direct, via, model="sim-mini", messages=user(unique("Go on")), max_completion_tokens=3
    )
    assert straight == through
    assert straight["usage"]["completion_tokens"] == 3
    assert straight["choices"][0]["finish_reason"] == "length"


def test_unknown_fields_are_forwarded_unchanged(via, wire_stack):
    fields: dict[str, Any] = {
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object", "properties": {}}},
        },
        "seed": 7,
        "stop": ["zzz"],
        "logit_bias": {"50256": -100},
        "user": "u-1",
        "metadata": {"team": "a"},
        "store": False,
        "prediction": {"type": "content", "content": "x"},
        "modalities": ["text"],
    }
    wire_stack.sim_reset()
    via.chat.completions.create(
        model="sim-mini",
        messages=user(unique("json please")),
        tools=weather_tools(),
        tool_choice="none",
        extra_body={"some_future_field": {"a": [1, None]}, **fields},
    )
    sent = wire_stack.sim_requests()[-1]["body"]
    assert {k: sent.get(k) for k in fields} == fields
    assert sent["some_future_field"] == {"a": [1, None]} and sent["tool_choice"] == "none"


def tool_request(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "sim-mini", "messages": user(text), "tools": weather_tools(), **extra}


def test_the_job_api_and_its_stream_carry_the_providers_tool_calls(wire_stack):
    body = tool_request(unique("Use get_weather and get_time for Lima"))
    expected = raw(wire_stack.sim_url, body)
    usage = {"stream": True, "stream_options": {"include_usage": True}}  # as the job API has it
    streamed = raw_chunks(wire_stack.sim_url, {**body, **usage})
    url = wire_stack.gateway_url
    job_id = requests.post(f"{url}/jobs", json={**body, "stream": True}, timeout=10).json()["id"]
    served = [
        c
        for c in sse_chunks(requests.get(f"{url}/jobs/{job_id}/events", stream=True))
        if c["choices"]
    ]
    assert served == [c for c in streamed if c["choices"]]  # the provider's fragments, in order
    job = eventually(lambda: _done(requests.get(f"{url}/jobs/{job_id}", timeout=5).json()))
    result = job["result"]  # assembled from the stream: what the plain answer has too
    assert _tool_calls(result) == _tool_calls(expected)
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    assert result["usage"] == expected["usage"]
    assert result["system_fingerprint"] == expected["system_fingerprint"]


def test_the_sdk_carries_the_providers_tool_calls(wire_stack):
    body = tool_request(unique("Use get_time for Tokyo"))
    expected = raw(wire_stack.sim_url, body)
    with wire_stack.client() as client:
        result = client.chat(body["messages"], model="sim-mini", tools=body["tools"])
        job_id = client.submit(body["messages"], model="sim-mini", tools=body["tools"], stream=True)
        chunks = list(client.chunks(job_id))
    assert _as_sent(result.completion.wire()) == {**expected, "model": expected["model"]}
    fragments = [
        f for c in chunks for choice in c["choices"] for f in choice["delta"].get("tool_calls", ())
    ]
    assert fragments and chunks[-1]["usage"]["total_tokens"] == expected["usage"]["total_tokens"]


def test_a_batch_file_line_carries_the_providers_completion(wire_stack, tmp_path):
    body = tool_request(unique("Use get_weather for Cairo"))
    expected = raw(wire_stack.sim_url, body)
    client = wire_stack.openai()
    line = {"custom_id": "one", "method": "POST", "url": "/v1/chat/completions", "body": body}
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with path.open("rb") as handle:
        source = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = eventually(lambda: _finished(client.batches.retrieve(batch.id)))
    [output] = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert _as_sent(output["response"]["body"]) == expected


def raw(base_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """A provider's answer as its JSON came, ids and ``created`` aside."""
    response = requests.post(f"{base_url}/chat/completions", json=body, timeout=10)
    return _as_sent(response.json())


def raw_chunks(base_url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(sse_chunks(requests.post(f"{base_url}/chat/completions", json=body, stream=True)))


def sse_chunks(response: requests.Response) -> Any:
    """The JSON chunks of a server-sent event stream, ids and ``created`` aside, up to [DONE]."""
    with response:
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: ") and line != "data: [DONE]":  # id: lines aside
                yield _as_sent(json.loads(line.removeprefix("data: ")))


EMAIL = "bob.smith@example.com"


@pytest.mark.parametrize("stream", [False, True])
def test_personal_data_in_tool_arguments_is_masked_going_and_restored_coming(
    via, wire_stack, stream
):
    wire_stack.sim_reset()
    text = unique(f"Use get_time for the office of {EMAIL}")
    answer = via.chat.completions.create(
        model="sim-mini", messages=user(text), tools=weather_tools(), stream=stream
    )
    if stream:
        arguments = "".join(
            call.function.arguments or ""
            for chunk in answer
            for choice in chunk.choices
            for call in choice.delta.tool_calls or ()
        )
    else:
        arguments = answer.choices[0].message.tool_calls[0].function.arguments
    assert json.loads(arguments)["zone"] == text  # the simulator fills it with what it was sent
    sent = wire_stack.sim_requests()[-1]["body"]["messages"][-1]["content"]
    assert EMAIL not in sent and "[EMAIL_1]" in sent


def test_fifty_identical_tool_call_requests_make_one_call_and_all_get_the_calls(via, wire_stack):
    wire_stack.sim_reset()
    body = tool_request(unique("Use get_weather and get_time for Quito"))
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: via.chat.completions.create(**body), range(50)))
    assert wire_stack.sim_stats()["completed"] == 1
    calls = [_tool_calls(parsed(a)) for a in answers]
    assert all(c == calls[0] and len(c) == 2 for c in calls)


def _as_sent(data: dict[str, Any]) -> dict[str, Any]:
    """A parsed object as the wire carries it: the fields a provider sent, nulls and all."""
    return {k: v for k, v in data.items() if k not in ("id", "created")}


def _tool_calls(completion: dict[str, Any]) -> list[tuple[str, str, str]]:
    calls = completion["choices"][0]["message"]["tool_calls"] or []
    return [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls]


def _done(job: dict[str, Any]) -> dict[str, Any] | None:
    return job if job["status"] == "done" else None


def _finished(batch: Any) -> Any:
    return batch if batch.status in ("completed", "failed", "cancelled", "expired") else None


def test_a_session_keeps_tool_call_turns_and_results_in_order(via, wire_stack):
    session = {"session_id": f"tools-{next(_serial)}"}
    question = user(unique("Use get_weather for Bern"))
    first = via.chat.completions.create(
        model="sim-mini", messages=question, tools=weather_tools(), extra_body=session
    )
    call = first.choices[0].message.tool_calls[0]
    result = {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 9}'}
    wire_stack.sim_reset()
    second = via.chat.completions.create(
        model="sim-mini", messages=[result], tools=weather_tools(), extra_body=session
    )
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    sent = wire_stack.sim_requests()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == result
