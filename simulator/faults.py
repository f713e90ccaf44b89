"""Injected faults, drawn from a seeded generator so that a run can be repeated exactly."""

from __future__ import annotations

import random
from collections.abc import Sequence


class FaultInjector:
    """Decides, request by request, whether a fault fires and which kind."""

    def __init__(self, rate: float, kinds: Sequence[str], rng: random.Random):
        self.rate = rate
        self.kinds = tuple(kinds)
        self.rng = rng

    def draw(self) -> str | None:
        """The fault this request meets (kinds equally likely), or None."""
        if self.rate <= 0 or not self.kinds or self.rng.random() >= self.rate:
            return None
        return self.rng.choice(self.kinds)
