"""The simulator's sliding-window rate limits, on an injected clock."""

from __future__ import annotations

import copy
import math

import pytest
from chatq.simulator.limits import RateLimiter, Refusal, SlidingWindow, duration
from hypothesis import given
from hypothesis import strategies as st


def test_rpm_holds_over_any_minute():
    limiter = RateLimiter(rpm=2, tpm=None, quantum_s=0)
    assert limiter.admit(1, now=0.0) is None
    assert limiter.admit(1, now=10.0) is None
    assert limiter.admit(1, now=20.0) == Refusal("requests", 40.0, 2)
    assert limiter.admit(1, now=59.0) == Refusal("requests", 1.0, 2)
    assert limiter.admit(1, now=60.0) is None  # the request of t=0 has left the window
    assert limiter.admit(1, now=61.0) == Refusal("requests", 9.0, 2)


def test_the_quantum_spreads_a_limit_over_the_minute():
    limiter = RateLimiter(rpm=60, tpm=None, quantum_s=1.0)  # 60 a minute, 1 a second
    assert limiter.admit(1, now=0.0) is None
    assert limiter.admit(1, now=0.25) == Refusal("requests", 0.75, 60)
    assert limiter.admit(1, now=1.0) is None
    bursty = RateLimiter(rpm=600, tpm=None, quantum_s=1.0)  # 10 a second
    assert [bursty.admit(1, now=0.0) is None for _ in range(11)] == [True] * 10 + [False]


def test_a_small_limit_still_allows_one_request_per_quantum():
    limiter = RateLimiter(rpm=2, tpm=None, quantum_s=1.0)
    assert limiter.admit(1, now=0.0) is None
    assert limiter.admit(1, now=0.5) == Refusal("requests", 0.5, 2)
    assert limiter.admit(1, now=1.0) is None
    assert limiter.admit(1, now=2.0) == Refusal("requests", 58.0, 2)


def test_tpm_counts_tokens_and_frees_just_enough():
    limiter = RateLimiter(rpm=None, tpm=100, quantum_s=0)
    assert limiter.admit(60, now=0.0) is None
    assert limiter.admit(30, now=10.0) is None
    assert limiter.admit(50, now=20.0) == Refusal("tokens", 40.0, 100)  # once t=0's 60 leave
    assert limiter.admit(10, now=20.0) is None
    assert limiter.admit(500, now=30.0) == Refusal("tokens", 50.0, 100)  # needs an empty window
    assert limiter.admit(500, now=80.0) is None
    assert limiter.admit(1, now=80.0) == Refusal("tokens", 60.0, 100)  # it counted as the limit


def test_the_longest_wait_names_the_refusing_limit():
    limiter = RateLimiter(rpm=10, tpm=100, quantum_s=0)
    assert limiter.admit(100, now=0.0) is None
    assert limiter.admit(1, now=15.0) == Refusal("tokens", 45.0, 100)
    # a refused request is not counted: nine more requests still fit
    assert all(limiter.admit(0, now=60.0 + i) is None for i in range(9))


def test_headers_describe_the_minute_windows():
    limiter = RateLimiter(rpm=60, tpm=1000, quantum_s=1.0)
    assert limiter.headers(now=0.0)["x-ratelimit-reset-requests"] == "0ms"
    limiter.admit(10, now=0.0)
    limiter.admit(15, now=30.0)
    assert limiter.headers(now=40.0) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "58",
        "x-ratelimit-reset-requests": "50s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "975",
        "x-ratelimit-reset-tokens": "50s",
    }
    assert RateLimiter(rpm=None, tpm=None).headers(now=0.0) == {}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.2504, "250ms"),
        (1.5, "1.5s"),
        (59.0, "59s"),
        (360.0, "6m0s"),
        (61.25, "1m1.25s"),
    ],
)
def test_duration_is_written_like_openai_headers(seconds, text):
    assert duration(seconds) == text


arrivals = st.lists(st.floats(0, 180, allow_nan=False), min_size=1, max_size=200).map(sorted)


@given(rpm=st.integers(1, 300), quantum_s=st.sampled_from([0.0, 0.5, 1.0, 7.5]), times=arrivals)
def test_never_admits_more_than_the_limits_in_any_window(rpm, quantum_s, times):
    limiter = RateLimiter(rpm=rpm, tpm=None, quantum_s=quantum_s)
    admitted = [t for t in times if limiter.admit(1, now=t) is None]
    share = max(1, math.ceil(rpm * quantum_s / 60))
    for i, start in enumerate(admitted):
        assert sum(1 for t in admitted[i:] if t < start + 60) <= rpm
        if quantum_s:
            assert sum(1 for t in admitted[i:] if t < start + quantum_s) <= share


@given(
    tpm=st.integers(10, 2000),
    requests=st.lists(
        st.tuples(st.floats(0, 0.5, allow_nan=False), st.integers(0, 300)), min_size=1, max_size=60
    ),
)
def test_retry_after_is_exact(tpm, requests):
    """Retrying after the refusal's wait is admitted; retrying a little sooner is not."""
    limiter = RateLimiter(rpm=None, tpm=tpm, quantum_s=1.0)
    now = 0.0
    for gap, cost in requests:
        now += gap
        refusal = limiter.admit(cost, now)
        if refusal is None:
            continue
        assert refusal.retry_after_s > 0
        if refusal.retry_after_s > 1e-6:
            early = copy.deepcopy(limiter)
            assert early.admit(cost, now + refusal.retry_after_s - 1e-6) is not None
        assert limiter.admit(cost, now + refusal.retry_after_s) is None
        now += refusal.retry_after_s


def test_a_window_forgets_what_has_left_it():
    window = SlidingWindow(limit=3, span_s=10.0)
    window.add(2, now=0.0)
    window.add(1, now=5.0)
    assert window.used(now=9.9) == 3
    assert window.used(now=10.0) == 1
    assert window.reset_in(now=10.0) == 5.0
    assert window.used(now=15.0) == 0 and window.reset_in(now=15.0) == 0.0
