"""The privacy hook: personal data masked on the way out, restored on the way back."""

from __future__ import annotations

from typing import Any

from chatq.shared.completion import Completion
from chatq.shared.jobs import ChatMessage
from chatq.workers.hooks import ChatHook, FilterFactory, Turn
from chatq.workers.hooks.privacy import Masker, StreamRestorer


class MaskPersonalData(ChatHook):
    """Masks e-mails, phones, PRC ID numbers, bank cards and IPs in every message's text and
    in earlier tool calls' arguments, for jobs whose tenant keeps privacy on (the default).
    The answer is restored everywhere the model may repeat them: text, reasoning, refusal
    and tool-call arguments, whole and as they stream."""

    name = "mask_personal_data"

    def before(self, turn: Turn) -> str | None:
        if not turn.job.privacy:
            return None
        masker = Masker()
        for message in turn.request.messages:  # no placeholder may collide with any text
            masker.avoid(message.text())
            for arguments in _arguments(message):
                masker.avoid(arguments)
        messages = [_masked(m, masker) for m in turn.request.messages]
        if masker.originals:
            turn.request = turn.request.model_copy(update={"messages": messages})
            turn.state[self.name] = masker
        return None

    def after(self, turn: Turn, answer: Completion) -> Completion:
        masker = turn.state.get(self.name)
        return answer.map_text(masker.restore) if masker else answer

    def stream(self, turn: Turn) -> FilterFactory | None:
        masker = turn.state.get(self.name)
        return (lambda: StreamRestorer(masker)) if masker else None


def _arguments(message: ChatMessage) -> list[str]:
    return [
        call["function"]["arguments"]
        for call in message.tool_calls or ()
        if isinstance((call.get("function") or {}).get("arguments"), str)
    ]


def _masked(message: ChatMessage, masker: Masker) -> ChatMessage:
    update: dict[str, Any] = {}
    content = message.content
    if isinstance(content, str):
        update["content"] = masker.mask(content)
    elif isinstance(content, list):
        update["content"] = [
            {**part, "text": masker.mask(part["text"])}
            if part.get("type") == "text" and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    if message.tool_calls:
        update["tool_calls"] = [_masked_call(call, masker) for call in message.tool_calls]
    return message.model_copy(update=update) if update else message


def _masked_call(call: dict[str, Any], masker: Masker) -> dict[str, Any]:
    function = call.get("function") or {}
    if not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": masker.mask(function["arguments"])}}
