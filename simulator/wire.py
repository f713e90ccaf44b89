"""OpenAI's chat completions wire format: response bodies and stream events.

A stream sends each choice's role, then the choices' pieces round-robin (one choice per
chunk, with its ``index``), then each choice's finish reason, the usage if asked for, and
``[DONE]``. Both transports (SSE and WebSocket) send these same events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chatq.shared.errors import openai_error_body
from chatq.simulator.logprobs import entries, entry
from chatq.simulator.replies import Reply, usage
from chatq.simulator.tools import ToolCall

DONE_EVENT = b"data: [DONE]\n\n"
SERVICE_TIER = "default"
Delta = tuple[dict[str, Any], dict[str, Any] | None]  # a chunk's delta and its logprobs


@lru_cache(maxsize=256)
def fingerprint(model: str) -> str:
    """The ``system_fingerprint`` of a model: ``fp_`` and ten hex digits of a hash of its name."""
    return "fp_" + hashlib.blake2b(model.encode(), digest_size=5).hexdigest()


def total_usage(replies: Sequence[Reply]) -> dict[str, Any]:
    """The usage of ``n`` choices: the prompt billed once, every choice's completion."""
    completion = sum(r.completion_tokens for r in replies)
    return usage(replies[0].prompt_tokens, completion, sum(r.reasoning_tokens for r in replies))


def completion(
    replies: Sequence[Reply],
    *,
    completion_id: str,
    created: int,
    model: str,
    top_logprobs: int | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice per reply. ``top_logprobs`` None: no
    logprobs; else logprobs with that many alternatives per token."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": message(reply),
                "finish_reason": reply.finish_reason,
                "logprobs": None if top_logprobs is None else _logprobs(reply, top_logprobs, i),
            }
            for i, reply in enumerate(replies)
        ],
        "usage": total_usage(replies),
        "service_tier": SERVICE_TIER,
        "system_fingerprint": fingerprint(model),
    }


def message(reply: Reply) -> dict[str, Any]:
    """The assistant message of a choice."""
    out: dict[str, Any] = {"role": "assistant"}
    if reply.reasoning:
        out["reasoning_content"] = "".join(reply.reasoning)
    if reply.tool_calls:
        out.update(content=None, refusal=None, tool_calls=[c.as_dict() for c in reply.tool_calls])
    elif reply.refused:
        out.update(content=None, refusal=reply.content)
    else:
        out.update(content=reply.content, refusal=None)
    return out


def _logprobs(reply: Reply, top: int, choice: int) -> dict[str, Any]:
    if reply.tool_calls:
        return {"content": None, "refusal": None}
    listed = entries(reply.pieces, top, choice)
    return (
        {"content": None, "refusal": listed}
        if reply.refused
        else {"content": listed, "refusal": None}
    )


@dataclass(frozen=True)
class Stream:
    """The events of a streamed answer, and where the token-time gaps fall between them."""

    events: list[bytes]
    gaps: frozenset[int]  # events that wait one token time before they go: each new round
    cut_at: int  # a cut stream ends before this event: after the roles and half the pieces
    prompt_tokens: int
    completion_tokens: int


def stream(
    replies: Sequence[Reply],
    *,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    top_logprobs: int | None = None,
) -> Stream:
    """The ``chat.completion.chunk`` SSE events of ``replies``, in order."""
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    head.update(model=model, service_tier=SERVICE_TIER, system_fingerprint=fingerprint(model))
    prefix = b"data: " + json.dumps(head)[:-1].encode() + b', "choices": '
    suffix = b', "usage": null}\n\n' if include_usage else b"}\n\n"

    def event(
        index: int, delta: dict[str, Any], logprobs: Any = None, finish: str | None = None
    ) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return prefix + json.dumps([choice]).encode() + suffix

    events = [event(i, role_delta(reply)) for i, reply in enumerate(replies)]
    timelines = [deltas(reply, i, top_logprobs) for i, reply in enumerate(replies)]
    gaps: set[int] = set()
    pieces = 0
    for step in range(max(len(t) for t in timelines)):
        if step:
            gaps.add(len(events))
        for i, timeline in enumerate(timelines):
            if step < len(timeline):
                events.append(event(i, *timeline[step]))
                pieces += 1
    events.extend(event(i, {}, None, reply.finish_reason) for i, reply in enumerate(replies))
    if include_usage:
        tail = b', "usage": ' + json.dumps(total_usage(replies)).encode() + b"}\n\n"
        events.append(prefix + b"[]" + tail)
    events.append(DONE_EVENT)
    completion_tokens = sum(r.completion_tokens for r in replies)
    cut_at = len(replies) + pieces // 2
    return Stream(events, frozenset(gaps), cut_at, replies[0].prompt_tokens, completion_tokens)


def role_delta(reply: Reply) -> dict[str, Any]:
    """The first delta of a choice, as OpenAI (or, for reasoning, DeepSeek) sends it."""
    if reply.reasoning:
        return {"role": "assistant", "content": None, "reasoning_content": ""}
    if reply.tool_calls:
        return {"role": "assistant", "content": None}
    if reply.refused:
        return {"role": "assistant", "content": None, "refusal": ""}
    return {"role": "assistant", "content": "", "refusal": None}


def deltas(reply: Reply, choice: int, top_logprobs: int | None) -> list[Delta]:
    """A choice's deltas after its role, one per chunk: reasoning, then the answer."""
    out: list[Delta] = [({"content": None, "reasoning_content": p}, None) for p in reply.reasoning]
    for i, call in enumerate(reply.tool_calls):
        out.extend((delta, None) for delta in _call_deltas(i, call))
    key = "refusal" if reply.refused else "content"
    if top_logprobs is None:
        out.extend(({key: p}, None) for p in reply.pieces)
        return out
    for position, piece in enumerate(reply.pieces):
        listed = [entry(piece, position, top_logprobs, choice)]
        logprobs = (
            {"content": None, "refusal": listed}
            if reply.refused
            else {"content": listed, "refusal": None}
        )
        out.append(({key: piece}, logprobs))
    return out


def _call_deltas(index: int, call: ToolCall) -> list[dict[str, Any]]:
    """A call's head (id, name, empty arguments), then one delta per argument fragment."""
    function = {"name": call.name, "arguments": ""}
    head = {"index": index, "id": call.id, "type": "function", "function": function}
    fragments = [{"index": index, "function": {"arguments": f}} for f in call.fragments]
    return [{"tool_calls": [part]} for part in [head, *fragments]]


def error(message: str, error_type: str, code: str | None = None) -> dict[str, Any]:
    return openai_error_body(message, error_type, code=code)
