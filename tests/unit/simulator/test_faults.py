"""Fault draws are seeded, and honour the configured rate and kinds."""

from __future__ import annotations

import random

import pytest
from chatq.simulator.config import SimConfig
from chatq.simulator.faults import FaultInjector


def draws(rate: float, kinds: list[str], seed: int, n: int) -> list[str | None]:
    injector = FaultInjector(rate, kinds, random.Random(seed))
    return [injector.draw() for _ in range(n)]


def test_the_same_seed_repeats_the_same_faults():
    assert draws(0.5, ["500", "cut"], 3, 200) == draws(0.5, ["500", "cut"], 3, 200)
    assert draws(0.5, ["500", "cut"], 3, 200) != draws(0.5, ["500", "cut"], 4, 200)


def test_rate_and_kinds():
    seen = draws(0.3, ["500", "503", "timeout"], 1, 30_000)
    faults = [d for d in seen if d is not None]
    assert 0.28 < len(faults) / len(seen) < 0.32
    for kind in ("500", "503", "timeout"):
        assert 0.3 < faults.count(kind) / len(faults) < 0.37


def test_rate_zero_never_and_rate_one_always():
    assert draws(0.0, ["500"], 1, 1000) == [None] * 1000
    assert draws(1.0, ["503"], 1, 1000) == ["503"] * 1000


@pytest.mark.parametrize(
    "bad",
    [
        {"faults": ("500", "teapot")},
        {"fail_rate": 1.5},
        {"fail_rate": 0.5, "faults": ()},
        {"rpm": 0},
        {"max_reply_tokens": 0},
        {"models": ()},
    ],
)
def test_config_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        SimConfig(**bad)
