"""Waiting in tests: on a condition, never for a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from chatq.shared import keys
from chatq.shared.jobs import JobStatus
from redis import Redis

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 60.0, every: float = 0.1, what: str = ""
) -> T:
    """What ``probe`` returns once it returns something (not None), asked every ``every``
    seconds; fails the test if that takes longer than ``timeout``."""
    deadline = _Deadline(timeout, what)
    while (found := probe()) is None:
        deadline.check()
        time.sleep(every)
    return found


async def eventually_async(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 60.0,
    every: float = 0.1,
    what: str = "",
) -> T:
    """``eventually`` for a coroutine: what ``await probe()`` gives once it gives something."""
    deadline = _Deadline(timeout, what)
    while (found := await probe()) is None:
        deadline.check()
        await asyncio.sleep(every)
    return found


class _Deadline:
    """Fails the test, saying what it waited for, once ``timeout`` seconds have passed."""

    def __init__(self, timeout: float, what: str) -> None:
        self.at = time.monotonic() + timeout
        self.failure = f"{what or 'still nothing'} after {timeout:g} s"

    def check(self) -> None:
        assert time.monotonic() < self.at, self.failure


def ended_count(redis: Redis, job_ids: Sequence[str]) -> int:
    """How many of the jobs have ended, by their records."""
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job_key(job_id), "status")
        ended = {s.value for s in JobStatus if s.is_terminal}
        return sum(status in ended for status in pipe.execute())
