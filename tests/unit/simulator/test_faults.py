"""Fault draws are seeded and honour the configured rate and kinds."""

from __future__ import annotations

import random

from simulator.faults import FaultInjector


def test_seeded_draws_repeat():
    def draws():
        injector = FaultInjector(0.5, ["500", "cut"], random.Random(3))
        return [injector.draw() for _ in range(50)]

    assert draws() == draws()


def test_rate_and_kinds():
    injector = FaultInjector(0.3, ["500", "503"], random.Random(1))
    draws = [injector.draw() for _ in range(10_000)]
    assert 0.27 < sum(d is not None for d in draws) / len(draws) < 0.33
    assert {d for d in draws if d} == {"500", "503"}
    assert FaultInjector(0.0, ["500"], random.Random(1)).draw() is None
