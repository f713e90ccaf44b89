"""What submits chat jobs and collects their answers: the SDK, the HTTP gateway."""

from producers.aio import AsyncChatqClient
from producers.client import ChatqClient

__all__ = ["AsyncChatqClient", "ChatqClient"]
