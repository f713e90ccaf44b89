"""OpenAI's chat completions wire format: response bodies and stream events."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from shared.errors import openai_error_body
from simulator.replies import Reply, usage

DONE_EVENT = b"data: [DONE]\n\n"
SERVICE_TIER = "default"


@lru_cache(maxsize=256)
def fingerprint(model: str) -> str:
    """The ``system_fingerprint`` of a model: ``fp_`` and ten hex digits of a hash of its name."""
    return "fp_" + hashlib.blake2b(model.encode(), digest_size=5).hexdigest()


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
        "usage": usage(prompt, completion_tokens),
        "service_tier": SERVICE_TIER,
        "system_fingerprint": fingerprint(model),
    }


def chunk_events(
    reply: Reply, *, completion_id: str, created: int, model: str, include_usage: bool
) -> Iterator[bytes]:
    """The SSE events of a streamed reply, in order: the role, one per piece, the finish
    reason, the usage (if asked for), then ``[DONE]``."""
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    head["model"] = model
    head["service_tier"] = SERVICE_TIER
    head["system_fingerprint"] = fingerprint(model)

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
