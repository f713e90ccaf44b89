"""What one chat request may carry, so that no caller can tie up a gateway or a worker: the
messages, their text, the tools, the images (the body's size and pace: ``body_guard``). Each
limit is a setting, and a request over one is told which."""

from __future__ import annotations

from dataclasses import dataclass

from chatq.shared.errors import InvalidRequest
from chatq.shared.jobs import ChatRequest
from chatq.shared.settings import Settings


class OverLimit(InvalidRequest):
    """The request carries more of something than a limit allows."""

    code = "limit_exceeded"


@dataclass(frozen=True)
class RequestLimits:
    messages: int
    content_chars: int
    tools: int
    image_parts: int

    @classmethod
    def of(cls, settings: Settings) -> RequestLimits:
        return cls(
            settings.max_messages,
            settings.max_content_chars,
            settings.max_tools,
            settings.max_image_parts,
        )

    def check(self, request: ChatRequest) -> None:
        """Raises ``OverLimit`` naming the first limit the request is over."""
        count = len(request.messages)
        _at_most(count, self.messages, "messages", "messages", "CHATQ_MAX_MESSAGES")
        chars, images = 0, 0
        for message in request.messages:
            if isinstance(message.content, str):
                chars += len(message.content)
            elif message.content:
                for part in message.content:
                    chars += len(str(part.get("text") or ""))
                    images += part.get("type") == "image_url"
        _at_most(
            chars, self.content_chars, "characters of text", "messages", "CHATQ_MAX_CONTENT_CHARS"
        )
        _at_most(images, self.image_parts, "image parts", "messages", "CHATQ_MAX_IMAGE_PARTS")
        tools = (request.model_extra or {}).get("tools")
        if isinstance(tools, list):
            _at_most(len(tools), self.tools, "tools", "tools", "CHATQ_MAX_TOOLS")


def _at_most(found: int, limit: int, what: str, param: str, setting: str) -> None:
    if found > limit:
        raise OverLimit(
            f"A request may carry at most {limit:,} {what} ({setting}); this one has {found:,}.",
            param=param,
        )


def too_large_message(limit: int, setting: str) -> str:
    return f"The request body is larger than the {limit:,} bytes allowed ({setting})."
