"""The simulator's ``/v1/embeddings``: OpenAI's request checks, and a deterministic unit
vector for each input (the same text, model and dimensions always give the same vector)."""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

from chatq.shared.tokens import count_prompt_tokens

DEFAULT_DIMENSIONS = 256
MAX_INPUTS = 2048  # OpenAI's limit on one request's inputs


class EmbeddingProblem(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


def inputs_of(body: Any) -> list[str | list[int]]:
    """The request's inputs, each text or a token array; ``EmbeddingProblem`` if malformed."""
    if not isinstance(body, dict):
        raise EmbeddingProblem("We could not parse the JSON body of your request.")
    given = body.get("input")
    if isinstance(given, str) or _tokens(given):
        items: list[Any] = [given]
    elif isinstance(given, list) and given:
        items = given
    else:
        raise EmbeddingProblem("'input' must be a string, an array of strings or tokens.", "input")
    if len(items) > MAX_INPUTS:
        raise EmbeddingProblem(f"'input' may hold at most {MAX_INPUTS} items.", "input")
    for item in items:
        if not (isinstance(item, str) and item) and not _tokens(item):
            raise EmbeddingProblem("Each input must be a non-empty string or tokens.", "input")
    return items


def _tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int for t in value)


def dimensions_of(body: dict[str, Any]) -> int:
    value = body.get("dimensions", DEFAULT_DIMENSIONS)
    if type(value) is not int or not 1 <= value <= 4096:
        raise EmbeddingProblem("'dimensions' must be an integer from 1 to 4096.", "dimensions")
    return value


def vector(item: str | list[int], model: str, dimensions: int) -> list[float]:
    """A unit vector determined by the input, the model and the dimensions."""
    seed = hashlib.blake2b(repr((model, item)).encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(seed, "big"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def tokens_of(items: list[str | list[int]]) -> int:
    return sum(len(i) if isinstance(i, list) else count_prompt_tokens([i]) for i in items)


def embeddings(body: dict[str, Any], items: list[str | list[int]]) -> dict[str, Any]:
    """The answer: one vector per input, in order, and the tokens read."""
    model, dimensions = body["model"], dimensions_of(body)
    data = [
        {"object": "embedding", "index": i, "embedding": vector(item, model, dimensions)}
        for i, item in enumerate(items)
    ]
    tokens = tokens_of(items)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
