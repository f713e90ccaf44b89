"""Waiting in tests: on a condition, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"{what or 'still nothing'} after {timeout:g} s"
        time.sleep(every)


def ended_count(redis: Redis, job_ids: Sequence[str]) -> int:
    """How many of the jobs have ended, by their records."""
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job_key(job_id), "status")
        ended = {s.value for s in JobStatus if s.is_terminal}
        return sum(status in ended for status in pipe.execute())
