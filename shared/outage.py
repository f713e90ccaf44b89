"""Riding out a Redis outage: retry what must not be lost until Redis answers again.

A worker holding a provider's answer keeps trying to record it while Redis restarts, rather
than drop it; a task that met a dead Redis before doing anything waits for it, then runs again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("chatq.outage")

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
T = TypeVar("T")


def retry_while_redis_down(
    call: Callable[[], T],
    *,
    patience_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, repeated while Redis is unreachable, for up to ``patience_s`` seconds."""
    deadline = clock() + patience_s
    delay = 0.1
    while True:
        try:
            return call()
        except REDIS_DOWN as exc:
            if clock() + delay > deadline:
                raise
            log.warning("redis unreachable (%s); trying again in %.1f s", exc, delay)
            sleep(delay)
            delay = min(delay * 2, 2.0)


def wait_for_redis(redis: Redis, *, patience_s: float) -> bool:
    """Whether Redis answers a PING within ``patience_s`` seconds."""
    try:
        retry_while_redis_down(redis.ping, patience_s=patience_s)
    except REDIS_DOWN:
        return False
    return True
