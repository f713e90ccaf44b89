"""What providers' response headers say about waiting: ``Retry-After`` (seconds, a date, or
``retry-after-ms``) and the ``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*`` pairs."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import Message
from email.utils import parsedate_to_datetime

from urllib3 import HTTPHeaderDict

CASE_BLIND = (HTTPHeaderDict, Message)  # urllib3's headers, http.client's

MAX_RETRY_AFTER = 60.0  # a longer wait is not trusted: back off on our own schedule


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a server asked for, from ``retry-after-ms`` or ``retry-after``; None if none."""
    millis = header(headers, "retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = header(headers, "retry-after")
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


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (lower case) in any case; HTTP clients' headers already
    ignore it, a plain dict is searched."""
    value = headers.get(name)
    if value is None and not isinstance(headers, CASE_BLIND):
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
        remaining = header(headers, f"x-ratelimit-remaining-{kind}")
        reset = header(headers, f"x-ratelimit-reset-{kind}")
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
