"""Request checks: the problems OpenAI reports, with its messages, params and codes."""

from __future__ import annotations

from typing import Any

import pytest
from chatq.simulator.checks import Problem, check_context, check_request

USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}


def asks(*calls: str) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [call(c) for c in calls]}


def answers(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "ok"}


def check(messages: list[Any] | None = None, **extra: Any) -> Problem | None:
    return check_request({"model": "m", "messages": messages or [USER], **extra}, None)


def test_a_full_tool_round_trip_is_valid():
    assert check([USER, asks("a", "b"), answers("b"), answers("a"), USER]) is None
    assert check([USER, asks("a"), answers("a")], tools=[TOOL]) is None


def test_a_tool_message_must_answer_a_preceding_call():
    expected = Problem(
        400,
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
        "message with 'tool_calls'.",
        "messages.[1].role",
        None,
    )
    assert check([USER, answers("a")]) == expected
    assert check([USER, asks("a"), answers("a"), answers("a")]).param == "messages.[3].role"
    assert check([USER, asks("a"), answers("zzz")]).param == "messages.[2].role"
    assert check([USER, asks("a"), answers("a"), USER, answers("a")]).param == "messages.[4].role"


def test_calls_must_all_be_answered_before_the_next_message():
    problem = check([USER, asks("call_1", "call_2"), answers("call_1"), USER])
    assert problem == Problem(
        400,
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        "call_2",
        "messages.[1].role",
        None,
    )
    last = check([USER, asks("x", "y")])
    assert last.param == "messages.[1].role" and last.message.endswith("messages: x, y")


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "tool", "content": "ok"}, "messages.[1].tool_call_id"),
        ({"role": "assistant", "tool_calls": "x"}, "messages[1].tool_calls"),
        (
            {"role": "assistant", "tool_calls": [{"type": "function"}]},
            "messages[1].tool_calls[0].id",
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f"}}]},
            "messages[1].tool_calls[0].function.arguments",
        ),
    ],
)
def test_malformed_tool_messages(message, param):
    assert check([USER, message]).param == param


def test_context_window_counts_prompt_and_completion_limit():
    assert check_context(100, {"max_tokens": 28}, 128) is None
    assert check_context(100, {"max_completion_tokens": 29, "max_tokens": 1}, 128) == Problem(
        400,
        "This model's maximum context length is 128 tokens. However, you requested 129 tokens "
        "(100 in the messages, 29 in the completion). Please reduce the length of the messages "
        "or completion.",
        "messages",
        "context_length_exceeded",
    )
    alone = check_context(200, {}, 128)
    assert alone.code == "context_length_exceeded" and "(200 in the messages, 0 in" in alone.message


def test_json_object_needs_the_word_json_in_the_messages():
    fmt = {"type": "json_object"}
    assert check(response_format=fmt) == Problem(
        400,
        "'messages' must contain the word 'json' in some form, to use 'response_format' of "
        "type 'json_object'.",
        "messages",
        None,
    )
    system = {"role": "system", "content": "Answer in JSON."}
    assert check([system, USER], response_format=fmt) is None
    assert check(response_format={"type": "text"}) is None


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"top_logprobs": 2}, "top_logprobs", None),
        ({"top_logprobs": 2, "logprobs": False}, "top_logprobs", None),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs", "integer_above_max_value"),
        ({"top_logprobs": -1, "logprobs": True}, "top_logprobs", "integer_below_min_value"),
        ({"top_logprobs": "3", "logprobs": True}, "top_logprobs", "invalid_type"),
        ({"logprobs": "yes"}, "logprobs", "invalid_type"),
        ({"stop": 5}, "stop", "invalid_value"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
        ({"seed": 1.5}, "seed", "invalid_type"),
        ({"tools": {}}, "tools", "invalid_type"),
        ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
        (
            {"tools": [{"type": "function", "function": {}}]},
            "tools[0].function.name",
            "missing_required_parameter",
        ),
        ({"tool_choice": "auto"}, "tool_choice", None),
        ({"tools": [TOOL], "tool_choice": "always"}, "tool_choice", "invalid_value"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
            None,
        ),
        ({"tools": [TOOL], "parallel_tool_calls": 1}, "parallel_tool_calls", "invalid_type"),
        ({"response_format": {"type": "yaml"}}, "response_format.type", "invalid_value"),
        (
            {"response_format": {"type": "json_schema"}},
            "response_format.json_schema",
            "missing_required_parameter",
        ),
    ],
)
def test_bad_optional_parameters(extra, param, code):
    problem = check(**extra)
    assert problem is not None and (problem.status, problem.param, problem.code) == (
        400,
        param,
        code,
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"n": 3, "stream": True},
        {"logprobs": True, "top_logprobs": 20},
        {"logprobs": True},
        {"stop": "\n"},
        {"stop": ["a", "b", "c", "d"]},
        {"seed": 42},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "lookup"}}},
        {"tools": [TOOL, {"type": "custom", "custom": {"name": "x"}}], "tool_choice": "required"},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}},
    ],
)
def test_good_optional_parameters(extra):
    assert check(**extra) is None
