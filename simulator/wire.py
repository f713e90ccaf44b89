"""OpenAI's chat completions wire format: request checks, response bodies and stream events."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import openai_error_body
from simulator.replies import Reply

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
DONE_EVENT = b"data: [DONE]\n\n"
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


def completion(
    replies: Sequence[Reply], *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice per reply; the prompt is billed once."""
    prompt = replies[0].prompt_tokens
    completion_tokens = sum(r.completion_tokens for r in replies)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": reply.content, "refusal": None},
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
            for i, reply in enumerate(replies)
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        },
        "system_fingerprint": None,
    }


def chunk_events(
    reply: Reply, *, completion_id: str, created: int, model: str, include_usage: bool
) -> Iterator[bytes]:
    """The SSE events of a streamed reply, in order: the role, one per piece, the finish
    reason, the usage (if asked for), then ``[DONE]``."""
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    head["model"] = model
    head["system_fingerprint"] = None

    def event(choices: list[dict[str, Any]], usage: Mapping[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {**head, "choices": choices}
        if include_usage:
            chunk["usage"] = usage
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    yield event(choice({"role": "assistant", "content": "", "refusal": None}))
    for piece in reply.pieces:
        yield event(choice({"content": piece}))
    yield event(choice({}, reply.finish_reason))
    if include_usage:
        yield event([], reply.usage())
    yield DONE_EVENT


def error(message: str, error_type: str, code: str | None = None) -> dict[str, Any]:
    return openai_error_body(message, error_type, code=code)
