"""The provider's answer as it came: a ``chat.completion`` kept whole, and its stream chunks.

Each model keeps the fields it does not name (``extra="allow"``) and is written back with
exactly the fields that were set (``wire()``), so what a provider sent, nulls and unknown
fields included, reaches the caller unchanged. chatq reads a few fields (text, finish
reasons, usage) and, when it serves an answer, sets only the id, ``created`` and the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The string fields of an assistant message that carry generated text (masking reads them).
TEXT_FIELDS = ("content", "reasoning_content", "refusal")


class WireModel(BaseModel):
    """A part of OpenAI's wire format: unknown fields kept, written back as they were set."""

    model_config = ConfigDict(extra="allow")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class FunctionCall(WireModel):
    name: str | None = None
    arguments: str | None = None


class ToolCall(WireModel):
    id: str | None = None
    type: str | None = None
    function: FunctionCall | None = None


class AssistantMessage(WireModel):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None  # DeepSeek, Qwen and vLLM reasoning models
    tool_calls: list[ToolCall] | None = None

    def map_text(self, rewrite: Callable[[str], str]) -> AssistantMessage:
        """A copy with ``rewrite`` applied to every generated text, tool arguments included."""
        update: dict[str, Any] = {
            name: rewrite(value)
            for name in TEXT_FIELDS
            if isinstance(value := getattr(self, name), str)
        }
        if self.tool_calls:
            update["tool_calls"] = [_map_arguments(call, rewrite) for call in self.tool_calls]
        return self.model_copy(update=update) if update else self


def _map_arguments(call: ToolCall, rewrite: Callable[[str], str]) -> ToolCall:
    function = call.function
    if function is None or not isinstance(function.arguments, str):
        return call
    arguments = rewrite(function.arguments)
    return call.model_copy(
        update={"function": function.model_copy(update={"arguments": arguments})}
    )


class Choice(WireModel):
    index: int = 0
    message: AssistantMessage = Field(default_factory=AssistantMessage)
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class Usage(WireModel):
    """Token counts; the detail objects (``prompt_tokens_details``...) ride along as extras."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Completion(WireModel):
    """A ``chat.completion``."""

    id: str | None = None
    object: str = "chat.completion"
    created: int | None = None
    model: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None

    @property
    def first(self) -> Choice | None:
        return self.choices[0] if self.choices else None

    def map_text(self, rewrite: Callable[[str], str]) -> Completion:
        """A copy with ``rewrite`` applied to every choice's generated text."""
        choices = [
            c.model_copy(update={"message": c.message.map_text(rewrite)}) for c in self.choices
        ]
        return self.model_copy(update={"choices": choices})

    def served_as(self, completion_id: str, created: int, model: str | None) -> dict[str, Any]:
        """The wire body a caller gets: chatq's id and ``created``, the caller's model name."""
        body = self.wire()
        body.update(id=completion_id, object="chat.completion", created=created)
        if model is not None:
            body["model"] = model
        return body


def text_completion(
    text: str, *, finish_reason: str = "stop", usage: Usage | None = None
) -> Completion:
    """An answer chatq makes itself (a hook's), with every field a provider would set."""
    message = AssistantMessage(role="assistant", content=text, refusal=None)
    choice = Choice(index=0, message=message, finish_reason=finish_reason, logprobs=None)
    return Completion(
        id=None,
        object="chat.completion",
        created=None,
        model=None,
        choices=[choice],
        usage=usage or Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
        system_fingerprint=None,
    )


def chunks_of(completion: Completion) -> list[dict[str, Any]]:
    """A finished answer as the stream chunks that would have made it, for a caller who asked
    to stream an answer that was not streamed (a cached one, a hook's). Each chunk lacks id,
    ``created`` and model, which the one who serves it sets."""
    top = {
        k: v
        for k, v in completion.wire().items()
        if k not in ("id", "object", "created", "model", "choices", "usage")
    }
    chunks: list[dict[str, Any]] = []
    for choice in completion.choices:
        message, index = choice.message, choice.index
        first = {"role": message.role, "content": "" if message.content is not None else None}
        first.update(  # nulls and fields that are not generated text go out whole, first
            (k, v)
            for k, v in message.wire().items()
            if k not in ("role", "content", "tool_calls") and not (k in TEXT_FIELDS and v)
        )
        chunks.append(_chunk(top, index, first))
        if message.reasoning_content:
            chunks.append(_chunk(top, index, {"reasoning_content": message.reasoning_content}))
        if message.content:
            chunks.append(_chunk(top, index, {"content": message.content}, choice.logprobs))
        if message.refusal:
            chunks.append(_chunk(top, index, {"refusal": message.refusal}))
        for k, call in enumerate(message.tool_calls or ()):
            chunks.append(_chunk(top, index, {"tool_calls": [{"index": k, **call.wire()}]}))
        chunks.append(_chunk(top, index, {}, finish_reason=choice.finish_reason))
    return chunks


def _chunk(
    top: dict[str, Any],
    index: int,
    delta: dict[str, Any],
    logprobs: Any = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
    return {**top, "choices": [choice]}
