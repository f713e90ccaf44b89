"""Requests- and tokens-per-minute limits as sliding windows, on a clock the caller passes in.

Each limit holds over any 60-second window (a log of what was admitted, so the count is exact),
and, like OpenAI's quantized limits, pro rata over any ``quantum_s``-second window too (rounded
up, at least one request), so a burst cannot spend the whole minute at once. A request that
either window cannot take is refused with the exact time until it could be admitted. A request
costing more than a window's limit counts as the whole limit: it waits for an empty window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

MINUTE_S = 60.0


class SlidingWindow:
    """At most ``limit`` units admitted in any ``span_s``-second window."""

    def __init__(self, limit: int, span_s: float):
        self.limit = limit
        self.span_s = span_s
        self._log: deque[tuple[float, int]] = deque()  # (expires at, cost), oldest first
        self._used = 0

    def used(self, now: float) -> int:
        """Units admitted within the window ending at ``now``."""
        log = self._log
        while log and log[0][0] <= now:
            self._used -= log.popleft()[1]
        return self._used

    def wait(self, cost: int, now: float) -> float:
        """Seconds until ``cost`` units fit (0 if they fit now)."""
        excess = self.used(now) + min(cost, self.limit) - self.limit
        if excess <= 0:
            return 0.0
        for expires, spent in self._log:
            excess -= spent
            if excess <= 0:
                return _until(expires, now)
        raise AssertionError("unreachable: an empty window fits any capped cost")

    def add(self, cost: int, now: float) -> None:
        cost = min(cost, self.limit)
        self._log.append((now + self.span_s, cost))
        self._used += cost

    def reset_in(self, now: float) -> float:
        """Seconds until the window is empty again."""
        return self._log[-1][0] - now if self.used(now) else 0.0


def _until(moment: float, now: float) -> float:
    """The smallest wait ``w`` with ``now + w >= moment`` in floating point."""
    wait = moment - now
    while now + wait < moment:
        wait = math.nextafter(wait, math.inf)
    return wait


class Limit:
    """One per-minute limit (requests or tokens): a minute window plus an optional quantum one."""

    def __init__(self, name: str, per_minute: int, quantum_s: float):
        self.name = name
        self.per_minute = per_minute
        self.minute = SlidingWindow(per_minute, MINUTE_S)
        self.windows = [self.minute]
        if 0 < quantum_s < MINUTE_S:
            share = math.ceil(per_minute * quantum_s / MINUTE_S - 1e-9)  # 60 * 1.0 / 60 is 1
            self.windows.append(SlidingWindow(max(1, share), quantum_s))

    def wait(self, cost: int, now: float) -> float:
        return max(window.wait(cost, now) for window in self.windows)

    def add(self, cost: int, now: float) -> None:
        for window in self.windows:
            window.add(cost, now)


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: which limit, and seconds until it would be admitted."""

    limit: str  # "requests" or "tokens"
    retry_after_s: float
    per_minute: int


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits, checked together."""

    def __init__(self, rpm: int | None, tpm: int | None, quantum_s: float = 1.0):
        self.requests = Limit("requests", rpm, quantum_s) if rpm else None
        self.tokens = Limit("tokens", tpm, quantum_s) if tpm else None
        self._limits = [limit for limit in (self.requests, self.tokens) if limit is not None]

    def admit(self, tokens: int, now: float) -> Refusal | None:
        """None if the request may go now (it is then counted), else why it may not."""
        refusal: Refusal | None = None
        for limit in self._limits:
            cost = 1 if limit is self.requests else tokens
            wait = limit.wait(cost, now)
            if wait > 0 and (refusal is None or wait > refusal.retry_after_s):
                refusal = Refusal(limit.name, wait, limit.per_minute)
        if refusal is None:
            for limit in self._limits:
                limit.add(1 if limit is self.requests else tokens, now)
        return refusal

    def headers(self, now: float) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers, for the minute windows."""
        out: dict[str, str] = {}
        for limit in self._limits:
            remaining = max(0, limit.per_minute - limit.minute.used(now))
            out[f"x-ratelimit-limit-{limit.name}"] = str(limit.per_minute)
            out[f"x-ratelimit-remaining-{limit.name}"] = str(remaining)
            out[f"x-ratelimit-reset-{limit.name}"] = duration(limit.minute.reset_in(now))
        return out


def duration(seconds: float) -> str:
    """A duration the way OpenAI's reset headers write it: ``"250ms"``, ``"1.5s"``, ``"6m0s"``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(round(seconds, 3), MINUTE_S)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text
