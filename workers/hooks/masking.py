"""The privacy hook: personal data masked on the way out, restored on the way back."""

from __future__ import annotations

from shared.jobs import ChatMessage
from workers.hooks import ChatHook, StreamFilter, Turn
from workers.hooks.privacy import Masker, StreamRestorer


class MaskPersonalData(ChatHook):
    """Masks e-mails, phones, PRC ID numbers, bank cards and IPs in every message's text, for
    jobs whose tenant keeps privacy on (the default)."""

    name = "mask_personal_data"

    def before(self, turn: Turn) -> str | None:
        if not turn.job.privacy:
            return None
        masker = Masker()
        for message in turn.request.messages:  # no placeholder may collide with any text
            masker.avoid(message.text())
        messages = [_masked(m, masker) for m in turn.request.messages]
        if masker.originals:
            turn.request = turn.request.model_copy(update={"messages": messages})
            turn.state[self.name] = masker
        return None

    def after(self, turn: Turn, text: str) -> str:
        masker = turn.state.get(self.name)
        return masker.restore(text) if masker else text

    def stream(self, turn: Turn) -> StreamFilter | None:
        masker = turn.state.get(self.name)
        return StreamRestorer(masker) if masker else None


def _masked(message: ChatMessage, masker: Masker) -> ChatMessage:
    content = message.content
    if isinstance(content, str):
        return message.model_copy(update={"content": masker.mask(content)})
    if isinstance(content, list):
        parts = [
            {**part, "text": masker.mask(part["text"])}
            if part.get("type") == "text" and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
        return message.model_copy(update={"content": parts})
    return message
