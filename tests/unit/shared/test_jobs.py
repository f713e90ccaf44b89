"""Job models: what a valid request is, and what is forwarded to the provider."""

from __future__ import annotations

import pytest
from chatq.shared.jobs import ChatJob, ChatRequest, JobStatus, Priority
from pydantic import ValidationError


def request(**overrides):
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}]}
    return ChatRequest.model_validate({**body, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {"messages": []},
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "tool", "content": "42"}]},
        {"max_tokens": 0},
        {"max_tokens": -5},
        {"temperature": 3},
        {"n": 0},
        {"n": 129},
        {"max_completion_tokens": 0},
        {"model": ""},
    ],
)
def test_invalid_requests_are_refused(overrides):
    with pytest.raises(ValidationError):
        request(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"top_p": 1.5},
        {"top_logprobs": 21},
        {"top_logprobs": -1},
        {"logprobs": "sometimes"},
        {"presence_penalty": 2.5},
        {"frequency_penalty": -2.5},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"logit_bias": {"50256": 101}},
        {"logit_bias": {"50256": -100.5}},
        {"seed": 2**63},
        {"seed": 1.5},
        {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
        {"tools": [{"type": "function", "function": {"name": "f" * 65}}]},
        {"tools": [{"type": "function", "function": {"name": ""}}]},
    ],
)
def test_fields_openai_bounds_are_bounded_the_same(overrides):
    with pytest.raises(ValidationError):
        request(**overrides)


def test_the_bounds_themselves_are_allowed():
    bounds = request(
        top_logprobs=20,
        presence_penalty=-2,
        frequency_penalty=2,
        stop=["a", "b", "c", "d"],
        logit_bias={"1": -100, 2: 100},
        seed=-(2**63),
        tools=[{"type": "function", "function": {"name": "get_weather-2"}}, {"type": "x"}],
    )
    assert bounds.provider_body(stream=False)["logit_bias"] == {"1": -100, "2": 100}


def test_stop_over_its_limit_is_one_error_saying_so():
    with pytest.raises(ValidationError) as refused:
        request(stop=list("abcde"))
    [error] = refused.value.errors()
    assert error["loc"] == ("stop",) and "at most 4 stop sequences" in error["msg"]


def test_provider_body_keeps_openai_fields_and_drops_chatq_ones():
    req = request(session_id="s1", priority="bulk", metadata={"a": "b"}, tools=[{"x": 1}])
    body = req.provider_body(stream=True)
    assert body["tools"] == [{"x": 1}] and body["metadata"] == {"a": "b"}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert not {"session_id", "priority"} & body.keys()
    assert req.priority is Priority.bulk


def test_provider_body_forwards_every_field_as_the_caller_sent_it():
    fields = {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"default": None}}}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "seed": 7,
        "stop": ["\n"],
        "logit_bias": {"50256": -100},
        "user": "u1",
        "store": True,
        "prediction": {"type": "content", "content": "x"},
        "modalities": ["text"],
        "logprobs": True,
        "top_logprobs": 2,
        "n": 3,
        "max_completion_tokens": 40,
        "some_future_field": {"a": [1, None]},
    }
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "42"},
    ]
    job = ChatJob(request=request(messages=messages, **fields))
    sent = ChatJob.model_validate_json(job.model_dump_json(exclude_none=True))  # the queue
    body = sent.request.provider_body(stream=False)
    assert body == {"model": "sim-mini", "messages": messages, **fields, "stream": False}


def test_completion_limit_and_choices():
    assert request(max_completion_tokens=5, max_tokens=9).completion_limit == 5
    assert request(max_tokens=9).completion_limit == 9
    assert request().completion_limit is None
    assert request(n=3).choice_count == 3 and request().choice_count == 1
    assert "n" not in request(n=3).provider_body(stream=False, choices=1)
    assert request().provider_body(stream=False, choices=4)["n"] == 4


def test_content_parts_text_and_images():
    msg = request(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                    {"type": "text", "text": "this?"},
                ],
            }
        ]
    ).messages[0]
    assert msg.text() == "what is this?"


def test_job_round_trips_as_json():
    job = ChatJob(request=request(stream=True))
    assert ChatJob.model_validate_json(job.model_dump_json()) == job
    assert job.id.startswith("job_")


def test_terminal_statuses():
    assert {s for s in JobStatus if s.is_terminal} == {"done", "failed", "cancelled"}
