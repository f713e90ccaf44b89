"""When to retry a provider call, and how long to wait first: pure functions, seeded by the caller.

Waits grow exponentially from ``initial_delay`` up to ``max_delay`` with full jitter (a uniform
draw between 0 and the cap), so many workers retrying at once spread out. A sane ``Retry-After``
from the server wins: the wait is at least what it asked for, plus a little jitter.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from chatq.shared.errors import (
    ChatqError,
    ProviderAuthRejected,
    ProviderError,
    ProviderRejected,
    RateLimited,
)
from chatq.workers.health import NoUsableKey
from chatq.workers.rate_headers import MAX_RETRY_AFTER, header

DEFAULT_MAX_RETRIES = 8
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 20.0
RETRY_AFTER_JITTER = 0.1  # fraction of Retry-After added at most, so retries do not stampede

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def should_retry(status: int | None, headers: Mapping[str, str] | None = None) -> bool:
    """Whether a failed call is worth repeating. ``status`` None means no HTTP answer at all."""
    if headers is not None:
        explicit = header(headers, "x-should-retry")
        if explicit == "true":
            return True
        if explicit == "false":
            return False
    if status is None:
        return True  # connection error or timeout
    return status in RETRYABLE_STATUSES or status >= 500


def backoff_delay(
    attempt: int,
    retry_after: float | None,
    rng: random.Random,
    *,
    initial_delay: float = INITIAL_RETRY_DELAY,
    max_delay: float = MAX_RETRY_DELAY,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
    if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER:
        return retry_after + rng.uniform(0, retry_after * RETRY_AFTER_JITTER)
    cap = min(max_delay, initial_delay * 2 ** max(0, attempt - 1))
    return rng.uniform(0, cap)


@dataclass(frozen=True)
class Retry:
    """Call again after ``delay_s``, on the same deployment if it is still the best."""

    delay_s: float
    counted: bool = True  # uses up one of the job's retries


@dataclass(frozen=True)
class FallBack:
    """Call again after ``delay_s``, on another deployment of the model if there is one."""

    delay_s: float
    counted: bool = True


@dataclass(frozen=True)
class GiveUp:
    """The error is the job's outcome."""


Decision = Retry | FallBack | GiveUp


def decide(
    error: ChatqError,
    *,
    retries: int,
    max_retries: int,
    rng: random.Random,
    several_deployments: bool = False,
    untried_deployments: bool = False,
    cooled_down: bool = False,
    initial_delay: float = INITIAL_RETRY_DELAY,
    max_delay: float = MAX_RETRY_DELAY,
) -> Decision:
    """What to do after a failed call, given how many retries the job has made.

    A refused API key is retired by the caller: the next key goes at once, free. A deployment
    out of keys is left for one not yet tried. A request the provider rejects is rejected for
    good. A 429 waits for the cluster-wide pause its ``Retry-After`` set (or backs off); any other
    provider failure backs off, on another deployment when there are several or this one
    just cooled down.
    """
    if isinstance(error, ProviderAuthRejected):
        return Retry(0.0, counted=False)
    if isinstance(error, NoUsableKey):
        return FallBack(0.0, counted=False) if untried_deployments else GiveUp()
    if not isinstance(error, ProviderError):
        return GiveUp()
    if isinstance(error, ProviderRejected) or retries >= max_retries:
        return GiveUp()
    retry_after = getattr(error, "retry_after", None)
    if retry_after:  # the limiter's pause already holds every worker until then
        delay = 0.0
    else:
        delay = backoff_delay(
            retries + 1, None, rng, initial_delay=initial_delay, max_delay=max_delay
        )
    if isinstance(error, RateLimited) or not (several_deployments or cooled_down):
        return Retry(delay)
    return FallBack(delay)
