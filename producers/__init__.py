"""What submits chat jobs and collects their answers: the SDK, the HTTP gateway."""

from chatq.producers.aio import AsyncChatqClient
from chatq.producers.client import ChatqClient

__all__ = ["AsyncChatqClient", "ChatqClient"]
