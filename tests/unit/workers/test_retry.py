"""The retry policy: which failures are retried, and the backoff schedule."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from workers.retry import (
    MAX_RETRY_AFTER,
    RETRY_AFTER_JITTER,
    backoff_delay,
    retry_after_seconds,
    should_retry,
)


def test_retries_connection_errors_timeouts_429_and_5xx():
    assert should_retry(None)
    for status in (408, 409, 429, 500, 502, 503, 504):
        assert should_retry(status), status


def test_other_4xx_fail_at_once():
    for status in (400, 401, 403, 404, 422):
        assert not should_retry(status), status


def test_x_should_retry_header_overrides_status():
    assert should_retry(400, {"x-should-retry": "true"})
    assert not should_retry(503, {"X-Should-Retry": "false"})


def test_retry_after_ms_wins_over_retry_after():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_seconds_and_http_date():
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    from email.utils import parsedate_to_datetime

    now = parsedate_to_datetime(date).timestamp() - 4
    assert retry_after_seconds({"retry-after": date}, now=now) == 4.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_backoff_is_seeded_and_exact():
    assert backoff_delay(3, None, random.Random(7)) == backoff_delay(3, None, random.Random(7))


@given(
    attempt=st.integers(min_value=1, max_value=60),
    initial=st.floats(min_value=0.001, max_value=5),
    cap=st.floats(min_value=0.01, max_value=60),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_full_jitter_stays_between_zero_and_the_exponential_cap(attempt, initial, cap, seed):
    delay = backoff_delay(attempt, None, random.Random(seed), initial_delay=initial, max_delay=cap)
    assert 0 <= delay <= min(cap, initial * 2 ** (attempt - 1))


@given(
    retry_after=st.floats(min_value=0.001, max_value=MAX_RETRY_AFTER),
    attempt=st.integers(min_value=1, max_value=10),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_sane_retry_after_is_honoured(retry_after, attempt, seed):
    delay = backoff_delay(attempt, retry_after, random.Random(seed))
    assert retry_after <= delay <= retry_after * (1 + RETRY_AFTER_JITTER)


def test_an_absurd_retry_after_falls_back_to_our_schedule():
    delay = backoff_delay(1, 3600, random.Random(1), initial_delay=0.5, max_delay=20)
    assert 0 <= delay <= 0.5


def test_the_cap_grows_exponentially_on_average():
    rng = random.Random(3)
    means = [
        sum(backoff_delay(a, None, rng, initial_delay=1, max_delay=1000) for _ in range(2000))
        / 2000
        for a in (1, 2, 3, 4)
    ]
    for lower, higher in itertools.pairwise(means):
        assert 1.6 < higher / lower < 2.4


def test_reset_durations_as_providers_write_them():
    from workers.retry import parse_duration

    assert parse_duration("1s") == 1.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("2.5") == 2.5
    assert parse_duration("soon") is None
    assert parse_duration("5") == 5.0


def test_spent_limits_in_headers_slow_down_before_a_429():
    from workers.retry import exhausted_for

    assert (
        exhausted_for({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"})
        == 1.5
    )
    assert (
        exhausted_for({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1.5s"})
        is None
    )
    both = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "200ms",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "2s",
    }
    assert exhausted_for(both) == 2.0
    assert exhausted_for({}) is None
