"""One mapping from a provider's refusal to chatq's typed errors, for every transport."""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import (
    ProviderAuthRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from workers.retry import should_retry


def provider_error(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """429: rate limited (retry after the wait); 401/403: the key was refused; 408, 409, 5xx
    or an explicit x-should-retry: unavailable for now; any other 4xx: rejected for good."""
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
    return ProviderRejected(f"Provider rejected the request ({status}): {message}", status=status)
