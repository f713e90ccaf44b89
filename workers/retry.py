"""When to retry a provider call, and how long to wait first: pure functions, seeded by the caller.

Waits grow exponentially from ``initial_delay`` up to ``max_delay`` with full jitter (a uniform
draw between 0 and the cap), so many workers retrying at once spread out. A sane ``Retry-After``
from the server wins: the wait is at least what it asked for, plus a little jitter.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

DEFAULT_MAX_RETRIES = 8
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 20.0
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is not trusted: back off on our own schedule
RETRY_AFTER_JITTER = 0.1  # fraction of Retry-After added at most, so retries do not stampede

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def should_retry(status: int | None, headers: Mapping[str, str] | None = None) -> bool:
    """Whether a failed call is worth repeating. ``status`` None means no HTTP answer at all."""
    if headers is not None:
        explicit = _header(headers, "x-should-retry")
        if explicit == "true":
            return True
        if explicit == "false":
            return False
    if status is None:
        return True  # connection error or timeout
    return status in RETRYABLE_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a server asked for, from ``retry-after-ms`` or ``retry-after``; None if none."""
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return None if now is None else max(0.0, when - now)


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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def parse_duration(text: str) -> float | None:
    """Seconds in a reset duration as providers write it: ``"1s"``, ``"250ms"``, ``"6m0s"``,
    ``"1h2m3.5s"``, or a bare number of seconds. None if unreadable."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    while i < len(text):
        char = text[i]
        if char.isdigit() or char == ".":
            number += char
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else char
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    return None if number else total


def exhausted_for(headers: Mapping[str, str]) -> float | None:
    """Seconds until the provider's limits recover, if its ``x-ratelimit-remaining-*`` headers
    say one is spent (0 left); None otherwise. Lets the cluster slow down before a 429."""
    wait = None
    for kind in ("requests", "tokens"):
        remaining = _header(headers, f"x-ratelimit-remaining-{kind}")
        reset = _header(headers, f"x-ratelimit-reset-{kind}")
        if remaining is None or reset is None:
            continue
        try:
            spent = int(float(remaining)) <= 0
        except ValueError:
            continue
        seconds = parse_duration(reset)
        if spent and seconds:
            wait = max(wait or 0.0, min(seconds, MAX_RETRY_AFTER))
    return wait
