"""Chat completions streamed over a WebSocket, for providers that stream on ``wss://``.

The request goes as one text frame; each ``chat.completion.chunk`` comes back as a frame, then
``[DONE]``. A refusal is a frame ``{"error": {...}, "status": N, "retry_after": s}``. Errors map
to the same typed ``ProviderError``s as the HTTP transport, so retries and fallbacks are alike.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

from chatq.shared.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from chatq.shared.settings import ProviderTimeouts
from chatq.workers.provider_errors import ProviderSaid, provider_error
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect


def ws_url(http_url: str) -> str:
    """``https://host/v1/chat/completions`` -> ``wss://host/v1/chat/completions``."""
    if http_url.startswith("https://"):
        return "wss://" + http_url.removeprefix("https://")
    if http_url.startswith("http://"):
        return "ws://" + http_url.removeprefix("http://")
    return http_url


def refusal_error(frame: dict[str, Any]) -> ProviderError:
    """The typed error for a refusal frame."""
    said = ProviderSaid.parse(json.dumps({"error": frame.get("error")}))
    wait = frame.get("retry_after")
    return provider_error(
        int(frame.get("status") or 500),
        said,
        retry_after=float(wait) if wait is not None else None,
    )


def stream_chunks(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeouts: ProviderTimeouts,
    *,
    on_socket: Callable[[socket.socket], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The chunks of one streamed answer; raises a ``ProviderError`` on any failure.
    ``on_socket`` is given the connection's socket once it is open (so that the call can be
    aborted)."""
    try:
        with connect(
            ws_url(url),
            additional_headers=headers,
            open_timeout=timeouts.connect,
            close_timeout=1,
            max_size=2**22,
        ) as connection:
            if on_socket is not None:
                on_socket(connection.socket)
            connection.send(json.dumps(body))
            while True:
                frame = connection.recv(timeout=timeouts.read)
                if isinstance(frame, bytes):
                    frame = frame.decode()
                if frame.strip() == "[DONE]":
                    return
                chunk = json.loads(frame)
                if "error" in chunk:
                    raise refusal_error(chunk)
                yield chunk
    except TimeoutError as exc:
        raise ProviderTimeout(f"Provider stream idle for over {timeouts.read:g} s") from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise refusal_error({"status": status, "error": f"handshake refused ({status})"}) from exc
    except ConnectionClosed as exc:
        raise ProviderUnavailable(f"Provider stream broke off: {exc}") from exc
    except (OSError, WebSocketException, ValueError) as exc:
        raise ProviderUnavailable(f"Could not stream from the provider: {exc}") from exc
