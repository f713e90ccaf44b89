"""What one request may carry, so that no caller can tie up a gateway or a worker: the body's
size (refused while it is read, before it is buffered), how long its body may take to
arrive, and, inside a chat request, the messages, their text, the tools, the images. Each
limit is a setting, and a request over one is told which."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chatq.shared.errors import InvalidRequest, openai_error_body
from chatq.shared.jobs import ChatRequest
from chatq.shared.settings import Settings
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_OVERHEAD_BYTES = 64 * 1024  # multipart framing around an uploaded file


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


class BodyGuard:
    """ASGI middleware on every request body: one declared larger than its route's limit is
    refused before any of it is read, one that grows past the limit as soon as it does (it is
    never buffered whole), and one that stalls for ``timeout_s`` is refused with 408. Uploads
    (``upload_paths``) have a limit of their own."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        upload_max_bytes: int,
        timeout_s: float,
        upload_paths: tuple[str, ...] = ("/v1/files",),
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes
        self.timeout_s = timeout_s
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope.get("path") in self.upload_paths
        limit = self.upload_max_bytes if upload else self.max_bytes
        setting = "CHATQ_MAX_FILE_BYTES" if upload else "CHATQ_MAX_REQUEST_BYTES"
        allowed = limit + (UPLOAD_OVERHEAD_BYTES if upload else 0)  # and multipart framing
        declared = _content_length(scope)
        if declared is not None and declared > allowed:  # no need to read a byte of it
            response = JSONResponse(
                openai_error_body(
                    too_large_message(limit, setting),
                    "invalid_request_error",
                    code="request_too_large",
                ),
                status_code=413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0
        body_read = False

        async def guarded() -> Message:
            nonlocal received, body_read
            if body_read:  # later calls wait for a disconnect, however long a stream lasts
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):  # no task per read, as wait_for
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"The request body stalled for over {self.timeout_s:g} s "
                    "(CHATQ_BODY_READ_TIMEOUT_S). Send it without pauses.",
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > allowed:
                    raise HTTPException(413, too_large_message(limit, setting))
                body_read = not message.get("more_body")
            else:
                body_read = True
            return message

        await self.app(scope, guarded, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
