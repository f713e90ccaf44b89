"""Which tools an answer calls, and the calls' ids and arguments."""

from __future__ import annotations

import json
import re
from typing import Any

from chatq.simulator.tools import calls_for
from chatq.simulator.words import request_digest


def tool(name: str, **parameters: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": parameters or {"query": {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


TOOLS = [tool("get_weather", city={"type": "string"}), tool("get_time"), tool("search")]


def calls(text: str, **extra: Any):
    body = {"model": "m", "messages": [{"role": "user", "content": text}], "tools": TOOLS, **extra}
    return calls_for(body, text, lambda: request_digest(body))


def names(text: str, **extra: Any) -> list[str] | None:
    made = calls(text, **extra)
    return None if made is None else [c.name for c in made.calls]


def test_tools_named_in_the_user_text_are_called_in_tools_order():
    assert names("search, then get_weather") == ["get_weather", "search"]
    assert calls("search").finish_reason == "tool_calls"


def test_nothing_named_auto_answers_with_text_and_required_calls_the_first():
    assert names("hello") is None
    assert names("hello", tool_choice="auto") is None
    assert names("hello", tool_choice="required") == ["get_weather"]


def test_a_named_tool_choice_calls_that_tool_and_finishes_with_stop():
    made = calls("search", tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert [c.name for c in made.calls] == ["get_time"] and made.finish_reason == "stop"


def test_none_no_parallel_calls_and_tool_results_sent_back():
    assert names("search get_time", tool_choice="none") is None
    assert names("search get_time", parallel_tool_calls=False) == ["get_time"]
    body = {
        "model": "m",
        "tools": TOOLS,
        "tool_choice": "required",
        "messages": [
            {"role": "user", "content": "search"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "found"},
        ],
    }
    assert calls_for(body, "search", lambda: request_digest(body)) is None


def test_calls_have_hashed_ids_and_json_arguments_carrying_the_user_text():
    made = calls("get_weather in Zürich, search too")
    ids = [c.id for c in made.calls]
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids) and len(set(ids)) == 2
    weather = made.calls[0]
    assert json.loads(weather.arguments) == {"city": "get_weather in Zürich, search too"}
    assert weather.arguments.startswith('{"city": "')
    assert len(weather.fragments) > 1
    assert calls("get_weather in Zürich, search too") == made


def test_other_kinds_of_tool_are_never_called():
    custom = [{"type": "custom", "custom": {"name": "grep"}}]
    body = {"model": "m", "messages": [{"role": "user", "content": "grep"}], "tools": custom}
    assert calls_for(body, "grep", lambda: request_digest(body)) is None
