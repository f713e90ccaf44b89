"""The limiter's arithmetic as pure functions: GCRA scheduling, token settlement, choices."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
from chatq.shared.deployments import Deployment
from chatq.workers.health import key_fingerprint, pick
from chatq.workers.limiter import (
    PACING_MARGIN,
    Lease,
    gcra_slot,
    interval_ms,
    settle_delta_ms,
)
from hypothesis import given
from hypothesis import strategies as st


def book_all(arrivals: list[float], interval: float, tolerance: float = 0.0) -> list[float]:
    """Send times the scheduler gives calls arriving at ``arrivals`` (sorted)."""
    tat, sends = 0.0, []
    for now in arrivals:
        wait, tat = gcra_slot(tat, now, interval, tolerance)
        sends.append(now + wait)
    return sends


arrival_lists = st.lists(st.floats(0, 10_000, allow_nan=False), min_size=1, max_size=200).map(
    sorted
)


@given(arrivals=arrival_lists, interval=st.floats(1, 1000))
def test_booked_calls_are_never_closer_than_the_interval(arrivals, interval):
    sends = sorted(book_all(arrivals, interval))
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert all(gap >= interval - 1e-6 for gap in gaps)


@given(arrivals=arrival_lists, interval=st.floats(1, 1000))
def test_no_call_waits_longer_than_the_calls_ahead_of_it_need(arrivals, interval):
    sends = book_all(arrivals, interval)
    for i, (now, send) in enumerate(zip(arrivals, sends, strict=True)):
        assert now <= send <= max(now, arrivals[0]) + i * interval + 1e-6


@given(interval=st.floats(1, 1000), now=st.floats(0, 1e6))
def test_an_idle_limit_lets_a_call_go_at_once(interval, now):
    wait, tat = gcra_slot(0.0, now, interval, 0.0)
    assert wait == 0 and tat == now + interval


@given(count=st.integers(10, 500), interval=st.floats(1, 100))
def test_a_burst_is_spread_at_exactly_the_rate(count, interval):
    sends = book_all([0.0] * count, interval)
    assert sends[-1] == pytest.approx((count - 1) * interval)


def test_tolerance_allows_that_much_burst():
    sends = book_all([0.0] * 5, interval=100, tolerance=200)
    assert sends == [0, 0, 0, 100, 200]


def test_intervals_pace_just_under_the_limit():
    assert interval_ms(600) == pytest.approx(100 / PACING_MARGIN)
    assert interval_ms(None) == 0
    assert 60_000 / interval_ms(600) < 600


@pytest.mark.parametrize(
    ("estimated", "actual", "exact", "delta"),
    [
        (100, 150, True, 50),  # more than estimated is always charged
        (100, 60, True, 0),  # a stated max_tokens is charged in full, as providers do
        (100, 60, False, -40),  # a guessed completion length is refunded
        (100, None, False, 0),  # no usage reported: the estimate stands
    ],
)
def test_settlement(estimated, actual, exact, delta):
    lease = Lease("d", "lease", estimated, ms_per_token=2.0, exact_estimate=exact)
    assert settle_delta_ms(lease, actual) == delta * 2.0


def deployment(name: str, priority: int = 0, weight: float = 1.0) -> Deployment:
    return Deployment(alias="a", name=name, base_url="http://x", priority=priority, weight=weight)


def test_pick_prefers_priority_and_spreads_by_weight():
    deps = [deployment("a", 0, 3), deployment("b", 0, 1), deployment("c", 1)]
    rng = random.Random(4)
    counts = Counter(pick(deps, set(), set(), rng).name for _ in range(4000))
    assert counts["c"] == 0
    assert 2.6 < counts["a"] / counts["b"] < 3.4


def test_pick_skips_cooled_and_avoided_then_falls_back():
    deps = [deployment("a"), deployment("b", 1)]
    rng = random.Random(1)
    assert pick(deps, {"a"}, set(), rng).name == "b"
    assert pick(deps, set(), {"a"}, rng).name == "b"
    assert pick(deps, {"a", "b"}, set(), rng).name == "a"  # all unwell: the best is tried


def test_key_fingerprints_are_stable_and_one_way():
    assert key_fingerprint("sk-secret") == key_fingerprint("sk-secret")
    assert "secret" not in key_fingerprint("sk-secret")
    assert key_fingerprint("a") != key_fingerprint("b")
