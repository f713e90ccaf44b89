"""``chatq up``'s watch over its parts: a part that dies is started again, after a backoff,
while the others keep serving; a part that keeps dying is reported and given up on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chatq.processes import Part
from chatq.shared.errors import ChatqError

FIRST_DELAY_S = 1.0  # before the first restart; doubled for each death in the window
MAX_DELAY_S = 30.0
DEATH_WINDOW_S = 120.0
MAX_DEATHS = 5  # deaths within the window before a part is given up on


@dataclass
class Watched:
    """One part of the stack, and how to start it again."""

    part: Part
    start: Callable[[], Part]
    deaths: list[float] = field(default_factory=list)  # when it died, within the window
    restart_at: float | None = None
    given_up: bool = False

    @property
    def name(self) -> str:
        return self.part.name


class Supervisor:
    def __init__(
        self,
        say: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        window_s: float = DEATH_WINDOW_S,
        max_deaths: int = MAX_DEATHS,
    ):
        self.say = say
        self.clock = clock
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.window_s = window_s
        self.max_deaths = max_deaths
        self.watched: list[Watched] = []

    def watch(self, part: Part, start: Callable[[], Part]) -> None:
        self.watched.append(Watched(part, start))

    @property
    def parts(self) -> list[Part]:
        """Every process the stack runs now (or ran last, for a part given up on)."""
        return [w.part for w in self.watched]

    def check(self) -> None:
        """One look at every part: notes the ones that died, restarts those whose wait is
        over."""
        for watched in self.watched:
            if watched.given_up:
                continue
            if watched.restart_at is None:
                if not watched.part.alive():
                    self._died(watched, f"exit code {watched.part.process.returncode}")
            elif self.clock() >= watched.restart_at:
                self._restart(watched)

    def _died(self, watched: Watched, how: str) -> None:
        now = self.clock()
        watched.deaths = [t for t in watched.deaths if now - t < self.window_s] + [now]
        deaths = len(watched.deaths)
        if deaths >= self.max_deaths:
            watched.given_up = True
            self.say(
                f"{watched.name} stopped ({how}), {deaths} times in {self.window_s:g} s: "
                "no more restarts. The rest of the stack keeps running; see its log."
            )
            return
        delay = min(self.max_delay_s, self.first_delay_s * 2 ** (deaths - 1))
        watched.restart_at = now + delay
        self.say(f"{watched.name} stopped ({how}); restarting it in {delay:g} s.")

    def _restart(self, watched: Watched) -> None:
        watched.restart_at = None
        try:
            watched.part = watched.start()
        except (ChatqError, RuntimeError, OSError) as exc:
            self._died(watched, f"failed to start: {exc}")
            return
        self.say(f"{watched.name} restarted (pid {watched.part.process.pid}).")
