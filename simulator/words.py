"""The simulator's words: a vocabulary of one-token words, one-token pieces, and hashes.

Every generated word is drawn from a hash of the request, so the same request body always
gets the same answer; ``chatq.shared.tokens`` counts each piece as exactly one token.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

# 64 distinct words of at most four letters: each is one token, with or without a leading space.
_WORDS = (
    "the a line job runs fast and each task gets its own turn so no one "
    "has to wait long for work end when many ask at once we keep them in "
    "then send back what they need with care it is good know how much can go "
    "on same time all day new old big may done next here path fair slow road"
)
VOCABULARY: tuple[str, ...] = tuple(_WORDS.split())
MIN_REPLY_TOKENS = 8
_TOKEN = re.compile(
    r"(\s*)(\w+|[^\w\s])"
)  # chatq.shared.tokens' pieces, with the space before each
_WORD_CHUNK = 4  # chatq.shared.tokens counts one token per four characters of a long word


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


def request_digest(body: Mapping[str, Any], choice: int = 0) -> bytes:
    """A hash of what picks an answer's words: model, messages, temperature, ``seed`` (when
    set) and the choice's number."""
    temperature = body.get("temperature")
    if isinstance(temperature, int) and not isinstance(temperature, bool):
        temperature = float(temperature)  # 1 and 1.0 are one temperature, as to any provider
    seed: list[Any] = [body.get("model"), body["messages"], temperature]
    if choice:
        seed.append(choice)
    if body.get("seed") is not None:
        seed.append({"seed": body["seed"]})
    material = json.dumps(seed, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(material, digest_size=64).digest()


def derive(digest: bytes, label: str) -> bytes:
    """A digest for one use of ``digest`` (reasoning, a tool call...), unrelated to the others."""
    return hashlib.blake2b(digest + label.encode(), digest_size=64).digest()


def sentence(digest: bytes, max_reply_tokens: int) -> list[str]:
    """A sentence of vocabulary words, its length and words picked by ``digest``."""
    shortest = min(MIN_REPLY_TOKENS, max_reply_tokens)
    length = shortest + int.from_bytes(digest[:4]) % (max_reply_tokens - shortest + 1)
    if length == 1:
        return [VOCABULARY[digest[4] % len(VOCABULARY)].capitalize()]
    words = [VOCABULARY[b % len(VOCABULARY)] for b in _bytes(digest, length - 1)]
    return [words[0].capitalize(), *(f" {w}" for w in words[1:]), "."]


def generated_pieces(body: Mapping[str, Any], max_reply_tokens: int, choice: int = 0) -> list[str]:
    """The sentence a request's ``choice`` answers with."""
    return sentence(request_digest(body, choice), max_reply_tokens)


def _bytes(seed: bytes, n: int) -> bytes:
    """``n`` bytes drawn from ``seed`` by chained hashing."""
    out = b""
    block = seed
    while len(out) < n:
        block = hashlib.blake2b(block, digest_size=64).digest()
        out += block
    return out[:n]
