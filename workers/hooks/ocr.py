"""Images for text-only models: image parts become text before the request is sent.

Models that read images get image parts as sent (a deployment says so with ``images = true``,
the default). For an alias whose deployments all set ``images = false``, each image part is
replaced by the text an OCR engine reads in it: Tesseract through ``pytesseract`` when it is
installed, else a note that an image was left out. Assign ``engine`` to use another one.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable
from typing import Any

from chatq.shared.jobs import ChatMessage
from chatq.workers.hooks import ChatHook, Turn

OcrEngine = Callable[[bytes], str]


def tesseract_engine() -> OcrEngine | None:
    try:
        import pytesseract  # type: ignore[import-not-found]
        from PIL import Image  # type: ignore[import-not-found]
    except ImportError:
        return None
    return lambda data: str(pytesseract.image_to_string(Image.open(io.BytesIO(data)))).strip()


class ImagesToText(ChatHook):
    name = "images_to_text"
    engine: OcrEngine | None = None

    def __init__(self) -> None:
        if self.engine is None:
            self.engine = tesseract_engine()

    def before(self, turn: Turn) -> str | None:
        if not turn.deployments or any(d.images for d in turn.deployments):
            return None
        messages = [self._as_text(m) for m in turn.request.messages]
        turn.request = turn.request.model_copy(update={"messages": messages})
        return None

    def _as_text(self, message: ChatMessage) -> ChatMessage:
        if not isinstance(message.content, list):
            return message
        parts = [self._part(p) for p in message.content]
        return message.model_copy(update={"content": parts})

    def _part(self, part: dict[str, Any]) -> dict[str, Any]:
        if part.get("type") != "image_url":
            return part
        url = str((part.get("image_url") or {}).get("url", ""))
        data = _inline_image(url)
        if data is None or self.engine is None:
            return {"type": "text", "text": "[an image was left out: this model reads text only]"}
        return {"type": "text", "text": f"[text in an image: {self.engine(data)}]"}


def _inline_image(url: str) -> bytes | None:
    """The bytes of a ``data:`` URL; None for remote URLs, which workers do not fetch."""
    if not url.startswith("data:") or "," not in url:
        return None
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None
