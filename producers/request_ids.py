"""Gives every HTTP request an id (the caller's ``X-Request-Id``, or a new one), sets it for
the logs and the jobs the request submits, and returns it in the response's headers."""

from __future__ import annotations

import re
import secrets

from chatq.shared.logs import request_id_var
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
ACCEPTED = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")  # ids that are safe to log and echo


class RequestIds:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER, b"")
        request_id = given.decode() if ACCEPTED.match(given) else f"req_{secrets.token_hex(16)}"
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
