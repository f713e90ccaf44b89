"""Rate limits as token buckets, refilled continuously, the way hosted chat APIs enforce them.

A bucket of ``per_minute`` refills at ``per_minute / 60`` a second and holds at most
``burst_s`` seconds' worth (at least one request's cost), so traffic is spread over the minute
instead of spent in one burst. A request that the bucket cannot cover is refused with the exact
time until it could be.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    per_minute: float
    burst_s: float
    level: float | None = None  # None until first used: then full
    updated: float = 0.0

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate * self.burst_s)

    def _refill(self, now: float) -> None:
        if self.level is None:
            self.level, self.updated = self.capacity, now
            return
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` can be spent (0 if now). A cost above capacity needs a full
        bucket and leaves it in debt."""
        self._refill(now)
        assert self.level is not None
        needed = min(cost, self.capacity)
        return 0.0 if self.level >= needed else (needed - self.level) / self.rate

    def spend(self, cost: float) -> None:
        self.level = (self.capacity if self.level is None else self.level) - cost

    def remaining(self) -> int:
        return max(0, int(self.level if self.level is not None else self.capacity))


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits checked together."""

    def __init__(self, rpm: int | None, tpm: int | None, burst_s: float = 1.0):
        self.requests = TokenBucket(rpm, burst_s) if rpm else None
        self.tokens = TokenBucket(tpm, burst_s) if tpm else None

    def admit(self, tokens: int, now: float) -> float:
        """0 if the request may go now (and is counted), else seconds to wait before retrying."""
        wait = 0.0
        if self.requests is not None:
            wait = max(wait, self.requests.wait_for(1, now))
        if self.tokens is not None:
            wait = max(wait, self.tokens.wait_for(tokens, now))
        if wait > 0:
            return wait
        if self.requests is not None:
            self.requests.spend(1)
        if self.tokens is not None:
            self.tokens.spend(tokens)
        return 0.0

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                out[f"x-ratelimit-limit-{name}"] = str(int(bucket.per_minute))
                out[f"x-ratelimit-remaining-{name}"] = str(bucket.remaining())
                level = bucket.capacity if bucket.level is None else bucket.level
                missing = bucket.capacity - max(0.0, level)
                out[f"x-ratelimit-reset-{name}"] = f"{missing / bucket.rate:.3f}s"
        return out
