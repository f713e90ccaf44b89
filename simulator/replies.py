"""Deterministic replies: the same request always gets the same answer, cut to ``max_tokens``.

A reply is a tuple of pieces that ``shared.tokens`` counts as exactly one token each, so a
stream sends one piece per chunk and ``completion_tokens`` is the number of pieces.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.tokens import count_prompt_tokens

# 64 distinct words of at most four letters: each is one token, with or without a leading space.
_WORDS = (
    "the a line job runs fast and each task gets its own turn so no one "
    "has to wait long for work end when many ask at once we keep them in "
    "then send back what they need with care it is good know how much can go "
    "on same time all day new old big may done next here path fair slow road"
)
VOCABULARY: tuple[str, ...] = tuple(_WORDS.split())
MIN_REPLY_TOKENS = 8
_TOKEN = re.compile(r"(\s*)(\w+|[^\w\s])")  # shared.tokens' pieces, with the space before each
_WORD_CHUNK = 4  # shared.tokens counts one token per four characters of a long word


@dataclass(frozen=True)
class Reply:
    pieces: tuple[str, ...]  # one token each; streamed one per chunk
    finish_reason: str  # "stop", or "length" when cut to max_tokens
    prompt_tokens: int

    @property
    def content(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)

    def usage(self) -> dict[str, Any]:
        return usage(self.prompt_tokens, self.completion_tokens)


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


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return count_prompt_tokens(message_text(m) for m in messages)


def max_tokens_of(body: Mapping[str, Any]) -> int | None:
    """The requested completion limit: ``max_completion_tokens``, else ``max_tokens``."""
    limit = body.get("max_completion_tokens")
    return body.get("max_tokens") if limit is None else limit


def token_pieces(text: str) -> list[str]:
    """``text`` split into one-token pieces that join back into it (whitespace-only: none)."""
    pieces: list[str] = []
    end = 0
    for match in _TOKEN.finditer(text):
        space, word = match.groups()
        chunks = [word[i : i + _WORD_CHUNK] for i in range(0, len(word), _WORD_CHUNK)]
        chunks[0] = space + chunks[0]
        pieces.extend(chunks)
        end = match.end()
    if pieces and end < len(text):
        pieces[-1] += text[end:]
    return pieces


def reply_for(
    body: Mapping[str, Any], *, echo: bool, max_reply_tokens: int, choice: int = 0
) -> Reply:
    """The reply to a valid chat completion request; ``choice`` numbers the samples of a
    request with ``n`` > 1, each one a different sentence."""
    messages = body["messages"]
    if echo:
        users = [m for m in messages if m.get("role") == "user"]
        natural = token_pieces(message_text(users[-1])) if users else []
    else:
        natural = generated_pieces(body, max_reply_tokens, choice)
    limit = max_tokens_of(body)
    cut = limit is not None and len(natural) > limit
    pieces = tuple(natural[:limit] if cut else natural)
    return Reply(pieces, "length" if cut else "stop", prompt_tokens(messages))


def replies_for(body: Mapping[str, Any], *, echo: bool, max_reply_tokens: int) -> list[Reply]:
    """The ``n`` replies (one unless the request sets ``n``) to a valid request."""
    count = body.get("n") or 1
    return [
        reply_for(body, echo=echo, max_reply_tokens=max_reply_tokens, choice=i)
        for i in range(count)
    ]


def generated_pieces(body: Mapping[str, Any], max_reply_tokens: int, choice: int = 0) -> list[str]:
    """A sentence of vocabulary words chosen by a hash of model, messages, temperature and
    the choice's number."""
    seed: list[Any] = [body.get("model"), body["messages"], body.get("temperature")]
    if choice:
        seed.append(choice)
    material = json.dumps(seed, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.blake2b(material, digest_size=64).digest()
    shortest = min(MIN_REPLY_TOKENS, max_reply_tokens)
    length = shortest + int.from_bytes(digest[:4]) % (max_reply_tokens - shortest + 1)
    if length == 1:
        return [VOCABULARY[digest[4] % len(VOCABULARY)].capitalize()]
    choices = _bytes(digest, length - 1)
    words = [VOCABULARY[b % len(VOCABULARY)] for b in choices]
    return [words[0].capitalize(), *(f" {w}" for w in words[1:]), "."]


def _bytes(seed: bytes, n: int) -> bytes:
    """``n`` bytes drawn from ``seed`` by chained hashing."""
    out = b""
    block = seed
    while len(out) < n:
        block = hashlib.blake2b(block, digest_size=64).digest()
        out += block
    return out[:n]
