"""Deterministic replies: the same request always gets the same answer, cut to ``max_tokens``."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from shared.tokens import count_prompt_tokens

# Short words, so that each reply piece is exactly one token by shared.tokens' count.
VOCABULARY = [
    "the",
    "a",
    "line",
    "job",
    "runs",
    "fast",
    "and",
    "each",
    "task",
    "gets",
    "its",
    "own",
    "turn",
    "so",
    "no",
    "one",
    "has",
    "to",
    "wait",
    "long",
    "for",
    "work",
    "to",
    "end",
    "when",
    "many",
    "ask",
    "at",
    "once",
    "we",
    "keep",
    "them",
    "in",
    "line",
    "then",
    "send",
    "back",
    "what",
    "they",
    "need",
    "with",
    "care",
    "it",
    "is",
    "good",
    "to",
    "know",
    "how",
    "much",
    "can",
    "go",
    "on",
    "at",
    "the",
    "same",
    "time",
]
MIN_REPLY_TOKENS = 8
_WORD = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Reply:
    pieces: list[str]  # one token each; streamed one per chunk
    finish_reason: str
    prompt_tokens: int

    @property
    def content(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return count_prompt_tokens(message_text(m) for m in messages)


def reply_for(body: dict[str, Any], *, echo: bool, max_reply_tokens: int) -> Reply:
    """The reply to a validated chat completion request."""
    messages = body["messages"]
    if echo:
        users = [m for m in messages if m.get("role") == "user"]
        natural = _WORD.findall(message_text(users[-1])) if users else []
    else:
        natural = _generated(body, max_reply_tokens)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    cut = limit is not None and len(natural) > limit
    pieces = natural[:limit] if cut else natural
    return Reply(pieces, "length" if cut else "stop", prompt_tokens(messages))


def _generated(body: dict[str, Any], max_reply_tokens: int) -> list[str]:
    seed_material = json.dumps(
        [body.get("model"), body["messages"], body.get("temperature")], sort_keys=True
    )
    digest = hashlib.blake2b(seed_material.encode(), digest_size=32).digest()
    span = max(1, max_reply_tokens - MIN_REPLY_TOKENS + 1)
    length = min(max_reply_tokens, MIN_REPLY_TOKENS + digest[0] % span)
    words = []
    for i in range(length):
        word = VOCABULARY[(digest[i % 32] + 7 * i + digest[(i * 5 + 1) % 32]) % len(VOCABULARY)]
        words.append(word.capitalize() if i == 0 else f" {word}")
    words[-1] += "."
    return words
