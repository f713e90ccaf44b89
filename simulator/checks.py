"""Request checks: the first problem OpenAI would report for a chat completion request.

Each check costs nothing when its parameter is absent, so a plain request pays only for the
few that every request needs (model, messages, limits).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chatq.shared.errors import openai_error_body
from chatq.simulator.logprobs import MAX_TOP_LOGPROBS
from chatq.simulator.replies import max_tokens_of, message_text

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_N = 128  # OpenAI's limit on choices per request
MAX_STOPS = 4
TOOL_CHOICES = ("none", "auto", "required")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


@dataclass(frozen=True)
class Problem:
    """What is wrong with a request, as OpenAI would say it."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None

    def body(self) -> dict[str, Any]:
        return openai_error_body(
            self.message, "invalid_request_error", param=self.param, code=self.code
        )


def parse_body(raw: bytes) -> Any:
    """The JSON document of a request body, or None if it is not strict JSON."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:  # also UnicodeDecodeError
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_request(body: Any, models: tuple[str, ...] | None) -> Problem | None:
    """The first problem OpenAI would report for a chat completion request, or None."""
    if not isinstance(body, dict):
        return Problem(400, "We could not parse the JSON body of your request.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return Problem(400, "you must provide a model parameter", "model")
    if models is not None and model not in models:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return Problem(404, message, None, "model_not_found")
    messages = body.get("messages")
    if messages is None:
        message = "Missing required parameter: 'messages'."
        return Problem(400, message, "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        message = "Invalid 'messages': expected a non-empty array of messages."
        return Problem(400, message, "messages", "empty_array" if messages == [] else None)
    problem = _check_messages(messages)
    if problem is not None:
        return problem
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (type(value) is not int or value < 1):
            message = f"Invalid '{name}': expected an integer of at least 1, got {value!r}."
            return Problem(400, message, name, "integer_below_min_value")
    stream = body.get("stream")
    if stream is not None and type(stream) is not bool:
        return Problem(400, "Invalid type for 'stream': expected a boolean.", "stream")
    n = body.get("n")
    if n is not None and (type(n) is not int or not 1 <= n <= MAX_N):
        message = f"Invalid 'n': expected an integer from 1 to {MAX_N}, got {n!r}."
        return Problem(400, message, "n", "invalid_value")
    options = body.get("stream_options")
    if options is not None and (not stream or not isinstance(options, dict)):
        message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return Problem(400, message, "stream_options")
    for check in _OPTIONAL_CHECKS:
        problem = check(body)
        if problem is not None:
            return problem
    return None


def check_context(prompt: int, body: Mapping[str, Any], window: int) -> Problem | None:
    """A 400 when the prompt and the completion limit asked for overflow the context window."""
    completion = max_tokens_of(body) or 0
    if prompt + completion <= window:
        return None
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
        "completion). Please reduce the length of the messages or completion."
    )
    return Problem(400, message, "messages", "context_length_exceeded")


def _check_messages(messages: list[Any]) -> Problem | None:
    """Each message's role, and that tool messages answer the calls just before them."""
    pending: dict[Any, None] | None = None  # the call ids still unanswered
    caller = 0  # the index of the assistant message that made them
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return Problem(400, f"Invalid type for 'messages[{i}]': expected an object.")
        role = message.get("role")
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES)
            text = f"Invalid value: {role!r}. Supported values are: {supported}."
            return Problem(400, text, f"messages[{i}].role", "invalid_value")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                text = (
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
                    "'tool_call_id'."
                )
                return Problem(400, text, f"messages.[{i}].tool_call_id")
            if pending is None or call_id not in pending:
                text = (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."
                )
                return Problem(400, text, f"messages.[{i}].role")
            del pending[call_id]
            continue
        if pending:
            return _unanswered(caller, pending)
        pending = None
        calls = message.get("tool_calls") if role == "assistant" else None
        if calls is not None:
            problem = _check_tool_calls(i, calls)
            if problem is not None:
                return problem
            pending = dict.fromkeys(call["id"] for call in calls)
            caller = i
    return _unanswered(caller, pending) if pending else None


def _unanswered(index: int, pending: Mapping[Any, None]) -> Problem:
    text = (
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(str(call_id) for call_id in pending)
    )
    return Problem(400, text, f"messages.[{index}].role")


def _check_tool_calls(index: int, calls: Any) -> Problem | None:
    where = f"messages[{index}].tool_calls"
    if not isinstance(calls, list):
        return Problem(
            400, f"Invalid type for '{where}': expected an array.", where, "invalid_type"
        )
    for j, call in enumerate(calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict):
            return Problem(400, f"Invalid type for '{at}': expected an object.", at, "invalid_type")
        function = call.get("function")
        for field, value in (
            ("id", call.get("id")),
            ("function.name", function.get("name") if isinstance(function, dict) else None),
            (
                "function.arguments",
                function.get("arguments") if isinstance(function, dict) else None,
            ),
        ):
            if not isinstance(value, str):
                text = f"Missing required parameter: '{at}.{field}'."
                return Problem(400, text, f"{at}.{field}", "missing_required_parameter")
    return None


def _check_tools(body: Mapping[str, Any]) -> Problem | None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            text = "Invalid type for 'tools': expected an array of objects."
            return Problem(400, text, "tools", "invalid_type")
        for i, tool in enumerate(tools):
            problem = _check_tool(i, tool)
            if problem is not None:
                return problem
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        if not tools:
            text = (
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified."
            )
            return Problem(400, text, "tool_choice")
        problem = _check_tool_choice(tool_choice, tools)
        if problem is not None:
            return problem
    return _boolean(body, "parallel_tool_calls")


def _check_tool(i: int, tool: Any) -> Problem | None:
    where = f"tools[{i}]"
    if not isinstance(tool, dict):
        return Problem(
            400, f"Invalid type for '{where}': expected an object.", where, "invalid_type"
        )
    if tool.get("type") != "function":
        return None  # other kinds of tool are accepted, never called
    function = tool.get("function")
    if not isinstance(function, dict):
        return _missing(f"{where}.function")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return _missing(f"{where}.function.name")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        at = f"{where}.function.parameters"
        return Problem(400, f"Invalid type for '{at}': expected an object.", at, "invalid_type")
    return None


def _check_tool_choice(tool_choice: Any, tools: list[Any]) -> Problem | None:
    if isinstance(tool_choice, str) and tool_choice in TOOL_CHOICES:
        return None
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            return _missing("tool_choice.function.name")
        if any(t.get("type") == "function" and t["function"]["name"] == name for t in tools):
            return None
        return Problem(400, f"Tool choice '{name}' not found in 'tools' parameter.", "tool_choice")
    modes = ", ".join(f"'{m}'" for m in TOOL_CHOICES)
    text = f"Invalid value for 'tool_choice': expected one of {modes} or a named function."
    return Problem(400, text, "tool_choice", "invalid_value")


def _check_response_format(body: Mapping[str, Any]) -> Problem | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in RESPONSE_FORMATS:
        formats = ", ".join(f"'{f}'" for f in RESPONSE_FORMATS)
        text = f"Invalid value for 'response_format.type': supported values are: {formats}."
        return Problem(400, text, "response_format.type", "invalid_value")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            return _missing("response_format.json_schema")
        if not isinstance(spec.get("name"), str):
            return _missing("response_format.json_schema.name")
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            at = "response_format.json_schema.schema"
            return Problem(400, f"Invalid type for '{at}': expected an object.", at, "invalid_type")
    if kind == "json_object" and not any(
        "json" in message_text(m).lower() for m in body["messages"]
    ):
        text = (
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'."
        )
        return Problem(400, text, "messages")
    return None


def _check_logprobs(body: Mapping[str, Any]) -> Problem | None:
    problem = _boolean(body, "logprobs")
    if problem is not None:
        return problem
    top = body.get("top_logprobs")
    if top is None:
        return None
    if type(top) is not int:
        text = "Invalid type for 'top_logprobs': expected an integer."
        return Problem(400, text, "top_logprobs", "invalid_type")
    if top < 0:
        text = (
            "Invalid 'top_logprobs': integer below minimum value. Expected a value >= 0, "
            f"but got {top} instead."
        )
        return Problem(400, text, "top_logprobs", "integer_below_min_value")
    if top > MAX_TOP_LOGPROBS:
        text = (
            "Invalid 'top_logprobs': integer above maximum value. Expected a value <= "
            f"{MAX_TOP_LOGPROBS}, but got {top} instead."
        )
        return Problem(400, text, "top_logprobs", "integer_above_max_value")
    if body.get("logprobs") is not True:
        text = (
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used."
        )
        return Problem(400, text, "top_logprobs")
    return None


def _check_stop_and_seed(body: Mapping[str, Any]) -> Problem | None:
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (
            isinstance(stop, list)
            and len(stop) <= MAX_STOPS
            and all(isinstance(s, str) for s in stop)
        )
    ):
        text = f"Invalid 'stop': expected a string or an array of at most {MAX_STOPS} strings."
        return Problem(400, text, "stop", "invalid_value")
    seed = body.get("seed")
    if seed is not None and type(seed) is not int:
        return Problem(400, "Invalid type for 'seed': expected an integer.", "seed", "invalid_type")
    return None


def _boolean(body: Mapping[str, Any], name: str) -> Problem | None:
    value = body.get(name)
    if value is None or type(value) is bool:
        return None
    return Problem(400, f"Invalid type for '{name}': expected a boolean.", name, "invalid_type")


def _missing(param: str) -> Problem:
    return Problem(
        400, f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


_OPTIONAL_CHECKS = (_check_tools, _check_response_format, _check_logprobs, _check_stop_and_seed)
