"""Token log probabilities in OpenAI's shape, deterministic per token, position and choice.

The chosen token heads its own ``top_logprobs``; the alternatives are vocabulary words (with
the token's leading space, if any), each less likely than the one before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from chatq.simulator.words import VOCABULARY

MAX_TOP_LOGPROBS = 20  # OpenAI's limit


def entries(pieces: Sequence[str], top: int, choice: int = 0) -> list[dict[str, Any]]:
    """The ``logprobs.content`` list of a choice's pieces."""
    return [entry(piece, i, top, choice) for i, piece in enumerate(pieces)]


def entry(token: str, position: int, top: int, choice: int = 0) -> dict[str, Any]:
    """One token's entry, with ``top`` alternatives (the token itself first)."""
    digest = hashlib.blake2b(f"{choice}:{position}:{token}".encode(), digest_size=8).digest()
    logprob = -(1 + int.from_bytes(digest[:3]) % 250_000) / 100_000  # in [-2.5, 0)
    tops = [_alternative(token, logprob)] if top else []
    space = " " if token.startswith(" ") else ""
    start = digest[3]
    k = 0
    while len(tops) < top:
        word = space + VOCABULARY[(start + k) % len(VOCABULARY)]
        k += 1
        if word != token:
            drop = (1 + digest[4 + len(tops) % 4]) / 100
            tops.append(_alternative(word, round(tops[-1]["logprob"] - drop, 5)))
    return {**_alternative(token, logprob), "top_logprobs": tops}


def _alternative(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}
