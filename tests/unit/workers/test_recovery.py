"""A worker's background loops never die silently: errors are logged and counted, rounds are
timestamped, and a dead worker's jobs come due within one sweep of their claims lapsing."""

from __future__ import annotations

import pytest
from chatq.shared import metrics
from chatq.workers.recovery import loop_round, sweep_interval_s
from redis.exceptions import ConnectionError as RedisConnectionError


def errors(loop: str) -> float:
    return metrics.LOOP_ERRORS.labels(loop)._value.get()


def test_an_error_in_a_round_is_counted_and_the_loop_goes_on():
    before = errors("test_loop")
    for failure in (RuntimeError("bug"), RedisConnectionError("down")):
        with loop_round("test_loop"):
            raise failure
    assert errors("test_loop") == before + 2


def test_a_round_that_ends_well_sets_the_heartbeat(monkeypatch):
    monkeypatch.setattr("chatq.workers.recovery.time.time", lambda: 1234.0)
    with loop_round("beating"):
        pass
    assert metrics.LOOP_HEARTBEAT.labels("beating")._value.get() == 1234.0


def test_interrupts_still_stop_the_loop():
    with pytest.raises(KeyboardInterrupt), loop_round("test_loop"):
        raise KeyboardInterrupt


@pytest.mark.parametrize(("check_s", "interval_s"), [(60, 5.0), (8, 2.0), (1, 0.5), (600, 5.0)])
def test_sweeps_come_often_enough_to_bound_recovery(check_s, interval_s):
    assert sweep_interval_s(check_s) == interval_s
