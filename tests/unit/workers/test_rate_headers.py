"""Provider response headers about waiting: Retry-After and the rate-limit pairs."""

from __future__ import annotations

from chatq.workers.rate_headers import exhausted_for, parse_duration, retry_after_seconds


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


def test_reset_durations_as_providers_write_them():
    assert parse_duration("1s") == 1.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("2.5") == 2.5
    assert parse_duration("soon") is None
    assert parse_duration("5") == 5.0


def test_spent_limits_in_headers_slow_down_before_a_429():
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
