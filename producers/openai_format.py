"""OpenAI wire-format bodies served from chatq results: completions, stream chunks, models.

The provider's own objects pass through whole; chatq sets only the id, ``created`` and the
caller's model name, and drops the ``usage`` a chunk carries unless the caller asked for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
from chatq.shared.completion import Completion, chunks_of, text_completion
from chatq.shared.jobs import ChatResult

DONE_LINE = "data: [DONE]\n\n"
_NOT_IN_CHUNKS = ("id", "object", "created", "model", "choices", "usage")


def completion_id(job_id: str) -> str:
    return f"chatcmpl-{job_id.removeprefix('job_')}"


def completion(result: ChatResult, created: int) -> dict[str, Any]:
    """The ``chat.completion`` a finished job answers with."""
    answer = result.completion or text_completion("")
    return answer.served_as(completion_id(result.job_id), created, result.model)


class ChunkServer:
    """Turns one job's stored chunks into the ``chat.completion.chunk`` objects its caller
    gets: with chatq's id, ``created`` and the caller's model name."""

    def __init__(self, job_id: str, model: str, created: int, *, include_usage: bool):
        self.head = {
            "id": completion_id(job_id),
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self.include_usage = include_usage

    def serve(self, chunk: dict[str, Any]) -> dict[str, Any]:
        body = {**chunk, **self.head}
        if not self.include_usage:
            body.pop("usage", None)
        return body

    def replay(self, answer: Completion) -> Iterator[dict[str, Any]]:
        """The chunks of an answer that was not streamed (a cached one, say)."""
        for chunk in chunks_of(answer):
            yield self.serve({**chunk, "usage": None} if self.include_usage else chunk)

    def usage(self, answer: Completion) -> dict[str, Any] | None:
        """The last chunk, with the whole answer's usage, if the caller asked for it."""
        if not self.include_usage or answer.usage is None:
            return None
        top = {k: v for k, v in answer.wire().items() if k not in _NOT_IN_CHUNKS}
        return {**top, **self.head, "choices": [], "usage": answer.usage.wire()}


def sse(data: dict[str, Any]) -> str:
    return f"data: {orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()}\n\n"


def model_list(models: list[str], created: int | None = None) -> dict[str, Any]:
    when = created if created is not None else int(time.time())
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": when, "owned_by": "chatq"} for m in models
        ],
    }
