"""The gateway's guard on every request body: its size, refused while it is read (before it
is buffered), and how long it may take to arrive."""

from __future__ import annotations

import asyncio

from chatq.producers.limits import too_large_message
from chatq.shared.errors import openai_error_body
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_OVERHEAD_BYTES = 64 * 1024  # multipart framing around an uploaded file


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
