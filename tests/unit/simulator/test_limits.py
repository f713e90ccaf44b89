"""The simulator's token-bucket limits, on an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.limits import RateLimiter


def test_rpm_refuses_past_the_burst_and_says_how_long_to_wait():
    limiter = RateLimiter(rpm=120, tpm=None, burst_s=1.0)  # 2 a second, 2 at once
    assert limiter.admit(1, now=0.0) == 0
    assert limiter.admit(1, now=0.0) == 0
    assert limiter.admit(1, now=0.0) == pytest.approx(0.5)
    assert limiter.admit(1, now=0.5) == 0


def test_tpm_counts_tokens_and_a_large_request_needs_a_full_bucket():
    limiter = RateLimiter(rpm=None, tpm=6000, burst_s=1.0)  # 100 tokens a second
    assert limiter.admit(80, now=0.0) == 0
    assert limiter.admit(50, now=0.0) == pytest.approx(0.3)
    assert limiter.admit(500, now=1.0) == 0  # full bucket: goes, leaving a debt
    assert limiter.admit(1, now=1.0) == pytest.approx(4.01)


def test_headers_name_the_limits():
    limiter = RateLimiter(rpm=60, tpm=1000)
    limiter.admit(10, now=0.0)
    headers = limiter.headers()
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-requests"] == "0"


@given(
    rpm=st.integers(60, 6000),
    arrivals=st.lists(st.floats(0, 120, allow_nan=False), min_size=1, max_size=300),
)
def test_never_admits_more_than_the_limit_allows(rpm, arrivals):
    limiter = RateLimiter(rpm=rpm, tpm=None, burst_s=1.0)
    admitted = [t for t in sorted(arrivals) if limiter.admit(1, now=t) == 0]
    span = max(arrivals) - min(arrivals)
    assert len(admitted) <= limiter.requests.capacity + rpm / 60 * span + 1e-9
