"""One mapping from a provider's refusal to chatq's typed errors, for every transport."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace

from chatq.shared.errors import (
    ProviderAuthRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from chatq.workers.retry import should_retry

MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class ProviderSaid:
    """The error object of a provider's answer: ``{"error": {message, type, code, param}}``."""

    message: str
    type: str | None = None
    code: str | None = None
    param: str | None = None

    @classmethod
    def parse(cls, text: str, reason: str | None = None) -> ProviderSaid:
        """What an error body says; its raw text (cut short) if it is not OpenAI's shape."""
        try:
            error = json.loads(text).get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, dict) and error.get("message"):
            return cls(
                str(error["message"])[:MAX_MESSAGE_CHARS],
                _text_or_none(error.get("type")),
                _text_or_none(error.get("code")),
                _text_or_none(error.get("param")),
            )
        if isinstance(error, str) and error:
            return cls(error[:MAX_MESSAGE_CHARS])
        return cls((text or reason or "no details")[:500])

    def scrubbed(self, *secrets: str | None) -> ProviderSaid:
        """The same, with every secret (the API key, the endpoint's URL) blanked out."""
        message = self.message
        for secret in secrets:
            if secret:
                message = message.replace(secret, "***")
        return replace(self, message=message)


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def provider_error(
    status: int,
    said: ProviderSaid,
    *,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """429: rate limited (retry after the wait); 401/403: the key was refused; 408, 409, 5xx
    or an explicit x-should-retry: unavailable for now; any other 4xx: rejected for good, and
    passed on to the caller as the provider said it."""
    message = said.message
    if status == 429:
        return RateLimited(
            f"Provider rate limit: {message}", status=status, retry_after=retry_after
        )
    if status in (401, 403):
        return ProviderAuthRejected(
            f"Provider refused the API key ({status}): {message}", status=status
        )
    if should_retry(status, headers):
        return ProviderUnavailable(f"Provider error {status}: {message}", status=status)
    return ProviderRejected(
        message,
        status=status,
        error_type=said.type or "invalid_request_error",
        code=said.code,
        param=said.param,
    )
