"""chatq: a queue-based distributed worker system for AI chat jobs.

The SDK is importable from the top: ``from chatq import ChatqClient, AsyncChatqClient``
(loaded on first use, so that the ``chatq`` command does not import it to start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatq.producers.aio import AsyncChatqClient
    from chatq.producers.client import ChatqClient

__all__ = ["AsyncChatqClient", "ChatqClient"]


def __getattr__(name: str) -> Any:
    if name == "ChatqClient":
        from chatq.producers.client import ChatqClient

        return ChatqClient
    if name == "AsyncChatqClient":
        from chatq.producers.aio import AsyncChatqClient

        return AsyncChatqClient
    raise AttributeError(f"module 'chatq' has no attribute {name!r}")
