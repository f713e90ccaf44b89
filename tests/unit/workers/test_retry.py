"""The retry policy: which failures are retried, the backoff schedule, and the decision."""

from __future__ import annotations

import itertools
import random

from chatq.shared.errors import (
    ProviderAuthRejected,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from chatq.workers.health import NoUsableKey
from chatq.workers.rate_headers import MAX_RETRY_AFTER
from chatq.workers.retry import (
    RETRY_AFTER_JITTER,
    FallBack,
    GiveUp,
    Retry,
    backoff_delay,
    decide,
    should_retry,
)
from hypothesis import given
from hypothesis import strategies as st


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


def decision(error, retries=0, **kw):
    return decide(error, retries=retries, max_retries=3, rng=random.Random(1), **kw)


def test_a_refused_key_tries_the_next_key_at_once_without_using_a_retry():
    assert decision(ProviderAuthRejected("no", status=401)) == Retry(0.0, counted=False)


def test_a_deployment_out_of_keys_is_left_for_one_not_yet_tried():
    assert decision(NoUsableKey("none"), untried_deployments=True) == FallBack(0.0, counted=False)
    assert decision(NoUsableKey("none"), untried_deployments=False) == GiveUp()


def test_a_rejected_request_is_never_sent_again():
    assert decision(ProviderRejected("bad", status=400), several_deployments=True) == GiveUp()


def test_a_429_waits_for_the_cluster_pause_and_stays_on_its_deployment():
    limited = RateLimited("slow down", status=429, retry_after=2.0)
    assert decision(limited, several_deployments=True) == Retry(0.0)
    backed_off = decision(RateLimited("slow down", status=429))
    assert isinstance(backed_off, Retry) and 0 <= backed_off.delay_s <= 0.5


def test_other_failures_back_off_on_another_deployment_when_there_is_one():
    down = ProviderUnavailable("503", status=503)
    assert isinstance(decision(down), Retry)
    assert isinstance(decision(down, several_deployments=True), FallBack)
    assert isinstance(decision(ProviderTimeout("slow"), cooled_down=True), FallBack)


def test_retries_run_out():
    down = ProviderUnavailable("503", status=503)
    assert isinstance(decision(down, retries=2), Retry)
    assert decision(down, retries=3) == GiveUp()
    assert decision(RateLimited("slow", status=429), retries=3) == GiveUp()
