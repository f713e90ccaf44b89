"""Deterministic replies: the same request always gets the same answer, cut to ``max_tokens``.

A reply is made of pieces that ``chatq.shared.tokens`` counts as exactly one token each, so a
stream sends one piece per chunk and ``completion_tokens`` is the number of pieces. What a
choice says, first rule that applies:

- the last user message contains ``sim:refuse``: a refusal;
- ``tools`` call for it (see ``chatq.simulator.tools``): tool calls;
- ``response_format`` ``json_object``: ``{"answer": <the text answer>}``; ``json_schema``: an
  object built from the schema (see ``chatq.simulator.schemas``);
- else the text answer: the last user message in echo mode, else a generated sentence.

Models whose name contains ``reason`` think first: ``reasoning_content``, a sentence of its
own, counted in ``completion_tokens`` and within ``max_tokens``. A ``stop`` string cuts the
content before its first occurrence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from chatq.shared.tokens import count_prompt_tokens
from chatq.simulator.schemas import value_for
from chatq.simulator.tools import Calls, ToolCall, calls_for
from chatq.simulator.words import derive, request_digest, sentence, token_pieces

REFUSAL_TRIGGER = "sim:refuse"
REFUSAL_TEXT = "I'm sorry, I can't help with that."
REASONING_MARK = "reason"  # in a model's name: it sends reasoning_content


@dataclass(frozen=True)
class Reply:
    """One choice of an answer: reasoning (maybe none), then content, a refusal, or calls."""

    pieces: tuple[str, ...]  # the content (or the refusal); one token each
    finish_reason: str  # "stop", "tool_calls", or "length" when cut to max_tokens
    prompt_tokens: int
    reasoning: tuple[str, ...] = ()  # reasoning_content, one token per piece, sent first
    tool_calls: tuple[ToolCall, ...] = ()
    refused: bool = False  # the pieces are a refusal, not content

    @property
    def content(self) -> str:
        """The text of the pieces: the content, or the refusal when ``refused``."""
        return "".join(self.pieces)

    @property
    def reasoning_tokens(self) -> int:
        return len(self.reasoning)

    @property
    def completion_tokens(self) -> int:
        return (
            len(self.pieces) + len(self.reasoning) + sum(len(c.fragments) for c in self.tool_calls)
        )

    @property
    def steps(self) -> int:
        """Chunks a stream sends after the role: one per piece, and a head per tool call."""
        return (
            len(self.pieces)
            + len(self.reasoning)
            + sum(1 + len(c.fragments) for c in self.tool_calls)
        )

    def usage(self) -> dict[str, Any]:
        return usage(self.prompt_tokens, self.completion_tokens, self.reasoning_tokens)


def usage(prompt: int, completion: int, reasoning: int = 0) -> dict[str, Any]:
    """OpenAI's ``usage`` object, with the token details it sends today (reasoning tokens are
    part of ``completion``)."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message: a string content, or the text parts of a list content."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Tokens of a prompt: every message's text, and the calls of assistant messages."""
    return count_prompt_tokens(_history_text(m) for m in messages)


def _history_text(message: Mapping[str, Any]) -> str:
    text = message_text(message)
    calls = message.get("tool_calls")
    if not calls or not isinstance(calls, list):
        return text
    parts = [text]
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.extend(
                v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)
            )
    return " ".join(parts)


def max_tokens_of(body: Mapping[str, Any]) -> int | None:
    """The requested completion limit: ``max_completion_tokens``, else ``max_tokens``."""
    limit = body.get("max_completion_tokens")
    return body.get("max_tokens") if limit is None else limit


def replies_for(
    body: Mapping[str, Any], *, echo: bool, max_reply_tokens: int, prompt: int | None = None
) -> list[Reply]:
    """The ``n`` replies (one unless the request sets ``n``) to a valid request."""
    prompt = prompt_tokens(body["messages"]) if prompt is None else prompt
    return [
        reply_for(body, echo=echo, max_reply_tokens=max_reply_tokens, choice=i, prompt=prompt)
        for i in range(body.get("n") or 1)
    ]


def reply_for(
    body: Mapping[str, Any],
    *,
    echo: bool,
    max_reply_tokens: int,
    choice: int = 0,
    prompt: int | None = None,
) -> Reply:
    """The reply to a valid chat completion request; ``choice`` numbers the samples of a
    request with ``n`` > 1, each one a different sentence."""
    messages = body["messages"]
    prompt = prompt_tokens(messages) if prompt is None else prompt
    digest = cache(partial(request_digest, body, choice))  # hashed once, and only if needed
    user = last_user_text(messages)
    reasoning: list[str] = []
    if REASONING_MARK in body["model"]:
        reasoning = sentence(derive(digest(), "reasoning"), max_reply_tokens)
    limit = max_tokens_of(body)
    if REFUSAL_TRIGGER in user:
        return _cut(
            Reply(tuple(token_pieces(REFUSAL_TEXT)), "stop", prompt, refused=True), reasoning, limit
        )
    calls = calls_for(body, user, digest)
    if calls is not None:
        return _cut_calls(calls, reasoning, limit, prompt)
    pieces = _content(body, user, digest, echo=echo, max_reply_tokens=max_reply_tokens)
    stop = body.get("stop")
    if stop:
        pieces = cut_at_stop(pieces, [stop] if isinstance(stop, str) else stop)
    return _cut(Reply(tuple(pieces), "stop", prompt), reasoning, limit)


def _content(
    body: Mapping[str, Any],
    user: str,
    digest: Callable[[], bytes],
    *,
    echo: bool,
    max_reply_tokens: int,
) -> list[str]:
    """The pieces of a text answer, in the ``response_format`` asked for."""
    fmt: Mapping[str, Any] = body.get("response_format") or {}
    kind = fmt.get("type", "text")
    if kind == "json_schema":
        schema = fmt["json_schema"].get("schema")
        value = value_for(schema, user, derive(digest(), "json_schema"))
        return token_pieces(json.dumps(value, ensure_ascii=False))
    text = token_pieces(user) if echo else sentence(digest(), max_reply_tokens)
    if kind == "json_object":
        return token_pieces(json.dumps({"answer": "".join(text)}, ensure_ascii=False))
    return text


def cut_at_stop(pieces: list[str], stops: Sequence[str]) -> list[str]:
    """The pieces before the first occurrence of any stop string (all of them if none occurs)."""
    text = "".join(pieces)
    found = [at for at in (text.find(s) for s in stops if s) if at >= 0]
    if not found:
        return pieces
    end = min(found)
    kept: list[str] = []
    length = 0
    for piece in pieces:
        if length + len(piece) > end:
            part = piece[: end - length]
            if part.strip():
                kept.append(part)
            elif part and kept:  # whitespace stays with the piece before, as token_pieces does
                kept[-1] += part
            break
        kept.append(piece)
        length += len(piece)
    return kept


def _cut(reply: Reply, reasoning: list[str], limit: int | None) -> Reply:
    """``reply`` after its reasoning, the two cut together to ``limit`` tokens."""
    if limit is None or len(reasoning) + len(reply.pieces) <= limit:
        if not reasoning:
            return reply
        return Reply(
            reply.pieces,
            reply.finish_reason,
            reply.prompt_tokens,
            tuple(reasoning),
            refused=reply.refused,
        )
    kept = reasoning[:limit]
    pieces = reply.pieces[: limit - len(kept)]
    return Reply(pieces, "length", reply.prompt_tokens, tuple(kept), refused=reply.refused)


def _cut_calls(calls: Calls, reasoning: list[str], limit: int | None, prompt: int) -> Reply:
    """A reply of tool calls after its reasoning, their arguments cut to ``limit`` tokens."""
    total = len(reasoning) + sum(len(c.fragments) for c in calls.calls)
    if limit is None or total <= limit:
        return Reply((), calls.finish_reason, prompt, tuple(reasoning), calls.calls)
    kept = reasoning[:limit]
    budget = limit - len(kept)
    cut: list[ToolCall] = []
    for call in calls.calls:
        if budget <= 0:
            break
        cut.append(ToolCall(call.id, call.name, call.fragments[:budget]))
        budget -= len(cut[-1].fragments)
    return Reply((), "length", prompt, tuple(kept), tuple(cut))
