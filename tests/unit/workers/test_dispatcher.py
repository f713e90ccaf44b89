"""How long a dispatcher sleeps between looks."""

from __future__ import annotations

from chatq.shared.job_state.scheduling import Dispatched
from chatq.shared.settings import SchedulerPolicy
from chatq.workers.dispatcher import IDLE_S, Dispatcher


def pause(*results: Dispatched) -> float:
    dispatcher = Dispatcher(None, None, SchedulerPolicy(tick_ms=50), lost_job_check_s=30)  # type: ignore[arg-type]
    return dispatcher.pause_after(list(results))


def test_it_idles_while_nothing_waits():
    assert pause(Dispatched(0, None)) == IDLE_S
    assert pause() == IDLE_S


def test_it_looks_again_when_the_soonest_pool_has_room_within_the_tick():
    assert pause(Dispatched(0, 0.02), Dispatched(0, 0.3)) == 0.02
    assert pause(Dispatched(0, 0.3)) == 0.05
    assert pause(Dispatched(64, 0.0)) == 0.002  # released all it may at once: more may wait
