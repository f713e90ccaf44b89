"""OpenAI wire-format bodies built from chatq results: completions, stream chunks, models."""

from __future__ import annotations

import json
import time
from typing import Any

from shared.jobs import ChatResult

DONE_LINE = "data: [DONE]\n\n"


def completion_id(job_id: str) -> str:
    return f"chatcmpl-{job_id.removeprefix('job_')}"


def completion(result: ChatResult, created: int) -> dict[str, Any]:
    """A ``chat.completion`` object for a finished job."""
    usage = result.usage.model_dump() if result.usage else None
    return {
        "id": completion_id(result.job_id),
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.content, "refusal": None},
                "finish_reason": result.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
        "system_fingerprint": None,
    }


def chunk(
    job_id: str,
    model: str,
    created: int,
    *,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    with_choice: bool = True,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` object."""
    body: dict[str, Any] = {
        "id": completion_id(job_id),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": (
            [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
            if with_choice
            else []
        ),
    }
    if usage is not None:
        body["usage"] = usage
    return body


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


def model_list(models: list[str], created: int | None = None) -> dict[str, Any]:
    when = created if created is not None else int(time.time())
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": when, "owned_by": "chatq"} for m in models
        ],
    }
