"""A span per HTTP request, when tracing is on (``chatq.shared.tracing``): under the caller's
``traceparent``, named by its route, ended once the response's last byte is sent (a stream's
included)."""

from __future__ import annotations

from typing import Any

from chatq.shared import tracing
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNTRACED_PATHS = frozenset({"/health", "/metrics"})


class RequestSpans:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"]}
        with tracing.server_span(f"{method} {scope['path']}", headers, attributes) as span:
            status = 500  # unless the app starts a response

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, sending)
            finally:
                if (route := getattr(scope.get("route"), "path", None)) is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    tracing.failed(span, str(status))
