"""Request checks: the first problem OpenAI would report for a chat completion request."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.errors import openai_error_body

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_N = 128  # OpenAI's limit on choices per request


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
    for i, message in enumerate(messages):
        problem = _check_message(i, message)
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
    if stream and n is not None and n > 1:
        message = "This simulator streams one choice only: send 'n' > 1 without 'stream'."
        return Problem(400, message, "n", "unsupported_value")
    options = body.get("stream_options")
    if options is not None and (not stream or not isinstance(options, dict)):
        message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return Problem(400, message, "stream_options")
    return None


def _check_message(index: int, message: Any) -> Problem | None:
    if not isinstance(message, dict):
        return Problem(400, f"Invalid type for 'messages[{index}]': expected an object.")
    role = message.get("role")
    if role not in ROLES:
        supported = ", ".join(f"'{r}'" for r in ROLES)
        message_text = f"Invalid value: {role!r}. Supported values are: {supported}."
        return Problem(400, message_text, f"messages[{index}].role", "invalid_value")
    return None
