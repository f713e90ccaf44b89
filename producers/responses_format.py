"""OpenAI's Responses API onto chatq's chat jobs: a ``/v1/responses`` request as a chat
completion request, and a job's record or answer as a ``response`` object.

Only what a chat-completions provider can do translates: function tools, text and JSON
output; built-in tools (web search, files, computer use) are refused with a 400 naming them.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from chatq.producers.jobs import describe_validation_errors
from chatq.shared.completion import Completion
from chatq.shared.errors import InvalidRequest
from chatq.shared.jobs import SAFE_ID, ChatRequest, JobError, JobStatus
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

RESPONSE_PREFIX = "resp_"
# chatq's own fields a response may carry too, as a chat may (``extra_body`` in the SDK).
CHATQ_OWN = ("deadline_s", "priority", "fairness_key", "cache", "coalesce")
# Parameters chat completions take under the same name, passed on as sent.
SAME_IN_CHAT = ("service_tier", "prompt_cache_key", "safety_identifier")
_ROLES = {"user", "system", "developer", "assistant"}
_TEXT_PARTS = {"input_text", "output_text", "text"}


class ResponsesRequest(BaseModel):
    """A ``POST /v1/responses`` body: the parameters chatq translates, the rest ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = Field(
        description="Text, or a list of messages and function call items."
    )
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = Field(None, min_length=1, max_length=200, pattern=SAFE_ID)
    stream: bool = False
    background: bool = False
    store: bool = True
    previous_response_id: str | None = Field(None, min_length=1, max_length=200, pattern=SAFE_ID)
    webhook_url: AnyHttpUrl | None = Field(
        None,
        description="chatq's own: called when the response ends (POST, HMAC-signed), as a "
        "job's webhook; its data.job_id is the response's id.",
    )

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        """OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512."""
        if value is not None and (
            len(value) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in value.items())
        ):
            raise ValueError("at most 16 pairs, keys of at most 64 and values of 512 characters")
        return value


def chat_request(
    request: ResponsesRequest,
    *,
    session_id: str | None,
    history: list[dict[str, Any]] | None = None,
) -> ChatRequest:
    """The chat completion request that answers ``request``. ``session_id``: the session the
    job continues and records its turn in; ``history``: earlier turns sent whole instead."""
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages += history or []
    messages += input_messages(request.input)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    for name in ("temperature", "top_p", "user", "parallel_tool_calls"):
        if (value := getattr(request, name)) is not None:
            body[name] = value
    if request.max_output_tokens is not None:
        body["max_tokens"] = request.max_output_tokens
    if request.tools:
        body["tools"] = [chat_tool(tool, i) for i, tool in enumerate(request.tools)]
    if request.tool_choice is not None:
        body["tool_choice"] = chat_tool_choice(request.tool_choice)
    if (response_format := chat_response_format(request.text)) is not None:
        body["response_format"] = response_format
    extra = request.model_extra or {}
    body |= {name: extra[name] for name in (*CHATQ_OWN, *SAME_IN_CHAT) if name in extra}
    reasoning = extra.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        body["reasoning_effort"] = reasoning["effort"]
    if session_id is not None:
        body |= {"session_id": session_id, "session_ttl": "long"}
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:  # what the input became breaks a chat request's rules
        raise InvalidRequest(describe_validation_errors(exc.errors()), param="input") from exc


def input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as chat messages: function calls in a row become one assistant
    message's tool calls, and each call's output a tool message."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not items:
        raise InvalidRequest("'input' must hold at least one item.", param="input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, index))
        elif kind == "function_call":
            call = {
                "id": _text_field(item, "call_id", index),
                "type": "function",
                "function": {
                    "name": _text_field(item, "name", index),
                    "arguments": _text_field(item, "arguments", index),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "reasoning":  # a past turn's reasoning: chat providers take none back
            continue
        elif kind == "function_call_output":
            output = item.get("output")
            content = output if isinstance(output, str) else _parts_text(output, index)
            call_id = _text_field(item, "call_id", index)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        else:
            raise InvalidRequest(
                f"Input items of type {str(kind)[:40]!r} are not supported; send messages, "
                "function_call, function_call_output and reasoning items.",
                param=f"input[{index}].type",
            )
    return messages


def _message(item: dict[str, Any], index: int) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise InvalidRequest(
            f"A message's role must be one of {sorted(_ROLES)}.", param=f"input[{index}].role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(
            "A message's content must be text or a list of content parts.",
            param=f"input[{index}].content",
        )
    parts = [_chat_part(part, index) for part in content]
    if role == "assistant" or all(part["type"] == "text" for part in parts):
        return {"role": role, "content": "".join(part.get("text", "") for part in parts)}
    return {"role": role, "content": parts}


def _chat_part(part: Any, index: int) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):  # a past turn's refusal
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image = {"url": part["image_url"], "detail": part.get("detail") or "auto"}
        return {"type": "image_url", "image_url": image}
    raise InvalidRequest(
        "Content parts must be input_text, output_text, refusal or input_image (with image_url).",
        param=f"input[{index}].content",
    )


def _parts_text(parts: Any, index: int) -> str:
    if not isinstance(parts, list):
        raise InvalidRequest(
            "A function call's output must be text or a list of text parts.",
            param=f"input[{index}].output",
        )
    return "".join(_chat_part(part, index).get("text", "") for part in parts)


def _text_field(item: dict[str, Any], name: str, index: int) -> str:
    value = item.get(name)
    if not isinstance(value, str) or (not value and name != "arguments"):
        raise InvalidRequest(
            f"A {item.get('type')} item needs '{name}' as text.", param=f"input[{index}].{name}"
        )
    return value


def chat_tool(tool: dict[str, Any], index: int) -> dict[str, Any]:
    """A Responses function tool as a chat completions tool."""
    if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
        raise InvalidRequest(
            f"Only function tools (type 'function' with a name) are supported; got "
            f"{str(tool.get('type'))[:40]!r}.",
            param=f"tools[{index}]",
        )
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest(
                "tool_choice must be auto, none, required or a function.", param="tool_choice"
            )
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "tool_choice must be auto, none, required or {type: function, name}.",
        param="tool_choice",
    )


def chat_response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format`` (None for plain text)."""
    form = (text or {}).get("format")
    if form is None or form.get("type") == "text":
        return None
    if form.get("type") == "json_object":
        return {"type": "json_object"}
    if form.get("type") == "json_schema" and isinstance(form.get("schema"), dict):
        schema = {k: form[k] for k in ("name", "schema", "strict", "description") if k in form}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        "text.format must be text, json_object or json_schema (with a schema).",
        param="text.format",
    )


# -- the response object ------------------------------------------------------------------


ResponseStatus = Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]


def input_items(response_id: str, given: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A response's input as the items ``GET /v1/responses/{id}/input_items`` lists: a
    message's text as ``input_text`` parts, each item with an id."""
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given
    listed = []
    for index, item in enumerate(items):
        shown = dict(item)
        shown.setdefault("type", "message")
        if shown["type"] == "message" and isinstance(shown.get("content"), str):
            kind = "output_text" if shown.get("role") == "assistant" else "input_text"
            shown["content"] = [{"type": kind, "text": shown["content"]}]
        shown.setdefault("id", f"in_{response_id.removeprefix(RESPONSE_PREFIX)}_{index}")
        listed.append(shown)
    return listed


def new_response_id() -> str:
    return f"{RESPONSE_PREFIX}{secrets.token_hex(16)}"


def message_item_id(response_id: str) -> str:
    return "msg_" + response_id.removeprefix(RESPONSE_PREFIX)


def reasoning_item_id(response_id: str) -> str:
    return "rs_" + response_id.removeprefix(RESPONSE_PREFIX)


def call_item_id(response_id: str, index: int) -> str:
    return f"fc_{response_id.removeprefix(RESPONSE_PREFIX)}_{index}"


def output_items(response_id: str, completion: Completion | None) -> list[dict[str, Any]]:
    """The answer's first choice as output items: its reasoning, its text and any refusal
    as a message, then its calls."""
    choice = completion.first if completion is not None else None
    if choice is None:
        return []
    items: list[dict[str, Any]] = []
    message = choice.message
    if reasoning := reasoning_of(message.wire()):
        items.append(reasoning_item(response_id, [reasoning_text(reasoning)], "completed"))
    parts = [output_text(message.content)] if message.content else []
    if message.refusal:
        parts.append(refusal(message.refusal))
    if parts or not message.tool_calls:
        items.append(message_item(response_id, parts or [output_text("")], "completed"))
    for index, call in enumerate(message.tool_calls or ()):
        function = call.function
        items.append(
            call_item(
                response_id,
                index,
                call_id=call.id or "",
                name=(function.name if function else None) or "",
                arguments=(function.arguments if function else None) or "",
                status="completed",
            )
        )
    return items


def reasoning_of(message: dict[str, Any]) -> str | None:
    """A chat message's (or delta's) reasoning text: ``reasoning_content`` as DeepSeek, Qwen
    and llama.cpp send it, or ``reasoning`` as vLLM and OpenRouter do."""
    for name in ("reasoning_content", "reasoning"):
        if isinstance(text := message.get(name), str) and text:
            return text
    return None


def message_item(response_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": message_item_id(response_id),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def reasoning_item(response_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": reasoning_item_id(response_id),
        "type": "reasoning",
        "status": status,
        "summary": [],
        "content": parts,
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def reasoning_text(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


def call_item(
    response_id: str, index: int, *, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": call_item_id(response_id, index),
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def response_usage(completion: Completion | None) -> dict[str, Any] | None:
    usage = completion.usage if completion is not None else None
    if usage is None:
        return None
    wire = usage.wire()
    cached = (wire.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (wire.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.total_tokens,
    }


def response_status(status: JobStatus, completion: Completion | None) -> ResponseStatus:
    if status is JobStatus.done:
        first = completion.first if completion is not None else None
        cut = first is not None and first.finish_reason == "length"
        return "incomplete" if cut else "completed"
    return {
        JobStatus.queued: "queued",
        JobStatus.in_progress: "in_progress",
        JobStatus.failed: "failed",
        JobStatus.cancelled: "cancelled",
    }[status]


def response_object(
    response_id: str,
    request: ResponsesRequest,
    *,
    status: ResponseStatus,
    created_at: float,
    completion: Completion | None = None,
    error: JobError | None = None,
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``response`` object of ``request`` as it stands: ``output`` (else the answer's)."""
    failed = status in ("failed", "cancelled") and error is not None
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(created_at),
        "status": status,
        "background": request.background,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": {"code": error.code or error.type, "message": error.message} if failed else None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {},
        "model": request.model,
        "output": output if output is not None else output_items(response_id, completion),
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": (request.model_extra or {}).get("reasoning"),
        "store": request.store,
        "temperature": request.temperature,
        "text": request.text or {"format": {"type": "text"}},
        "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [],
        "top_p": request.top_p,
        "usage": response_usage(completion),
        "user": request.user,
    }
