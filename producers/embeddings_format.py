"""OpenAI's ``/v1/embeddings`` request, as a chatq job, and the answer in the format asked."""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from chatq.shared.errors import InvalidRequest
from chatq.shared.jobs import SAFE_ID, ChatRequest, EmbeddingInput
from pydantic import BaseModel, Field

MAX_INPUTS = 2048  # OpenAI's limit on one request's inputs
MAX_INPUT_TOKENS = 8192  # OpenAI's limit on one input (a token array's length)


class EmbeddingsRequest(BaseModel):
    """A ``POST /v1/embeddings`` body."""

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="Text, texts, a token array or token arrays, each embedded in order."
    )
    dimensions: int | None = Field(None, ge=1, le=65536)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(None, min_length=1, max_length=200, pattern=SAFE_ID)


def embedding_input(request: EmbeddingsRequest) -> EmbeddingInput:
    """The request's inputs as a list, each checked as OpenAI checks them."""
    given = request.input
    items: list[Any] = [given] if isinstance(given, str) or _is_tokens(given) else list(given)
    if not items:
        raise InvalidRequest("'input' must not be empty.", param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(f"'input' may hold at most {MAX_INPUTS} items.", param="input")
    for index, item in enumerate(items):
        if item == "" or item == []:
            raise InvalidRequest("An input must not be empty.", param=f"input[{index}]")
        if isinstance(item, list) and len(item) > MAX_INPUT_TOKENS:
            message = f"An input may hold at most {MAX_INPUT_TOKENS} tokens."
            raise InvalidRequest(message, param=f"input[{index}]")
    return EmbeddingInput(input=items, dimensions=request.dimensions)


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int for t in value)


def stand_in_request(request: EmbeddingsRequest, inputs: EmbeddingInput) -> ChatRequest:
    """The chat-shaped request an embeddings job carries for what is chat-shaped in chatq:
    the request limits and the scheduler's estimate of its tokens (its texts, and a token
    array as that many words)."""
    text = "\n".join(
        item if isinstance(item, str) else " ".join("t" for _ in item) for item in inputs.input
    )
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 1,
        "temperature": 0,
    }
    if request.user is not None:
        body["user"] = request.user
    return ChatRequest.model_validate(body)


def embeddings_answer(answer: dict[str, Any], model: str, encoding_format: str) -> dict[str, Any]:
    """The provider's answer as the caller gets it: its model name, vectors in order and in
    the format asked (base64: little-endian float32, as OpenAI's)."""
    data = sorted(answer.get("data") or (), key=lambda item: item.get("index", 0))
    if encoding_format == "base64":
        data = [{**item, "embedding": _base64(item["embedding"])} for item in data]
    usage = answer.get("usage") or {}
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "total_tokens": usage.get("total_tokens", usage.get("prompt_tokens", 0)),
        },
    }


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
