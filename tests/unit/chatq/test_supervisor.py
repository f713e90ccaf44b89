"""chatq up's supervisor: dead parts restarted with backoff, a part that keeps dying given up."""

from __future__ import annotations

from dataclasses import dataclass

from chatq.processes import Part
from chatq.supervisor import Supervisor


@dataclass
class FakeProcess:
    pid: int
    returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def part(pid: int) -> Part:
    return Part("worker w1", FakeProcess(pid))  # type: ignore[arg-type]


def supervised(starts: list[int] | None = None) -> tuple[Supervisor, Clock, list[str], list[int]]:
    clock, said = Clock(), []
    supervisor = Supervisor(said.append, clock=clock, max_deaths=3, window_s=60)
    pids = starts if starts is not None else []

    def start() -> Part:
        pid = 100 + len(pids)
        pids.append(pid)
        return part(pid)

    supervisor.watch(part(1), start)
    return supervisor, clock, said, pids


def test_a_dead_part_is_restarted_after_a_backoff_that_doubles():
    supervisor, clock, said, pids = supervised()
    supervisor.parts[0].process.returncode = -9
    supervisor.check()
    assert said == ["worker w1 stopped (exit code -9); restarting it in 1 s."]
    supervisor.check()
    assert pids == []  # not before its backoff
    clock.now = 1.0
    supervisor.check()
    assert pids == [100] and said[-1] == "worker w1 restarted (pid 100)."
    supervisor.parts[0].process.returncode = 1
    clock.now = 2.0
    supervisor.check()
    assert said[-1].endswith("restarting it in 2 s.")


def test_a_part_that_keeps_dying_is_given_up_on_and_said_so():
    supervisor, clock, said, pids = supervised()
    for _ in range(3):
        supervisor.parts[0].process.returncode = 1
        supervisor.check()
        clock.now += 10
        supervisor.check()
    assert "3 times in 60 s: no more restarts" in said[-1]
    assert len(pids) == 2
    clock.now += 100
    supervisor.check()
    assert len(pids) == 2  # left alone


def test_deaths_long_ago_do_not_count():
    supervisor, clock, said, pids = supervised()
    for _ in range(5):
        supervisor.parts[0].process.returncode = 1
        supervisor.check()
        clock.now += 100  # each death outside the window of the one before
        supervisor.check()
    assert len(pids) == 5 and not any("no more restarts" in s for s in said)
