"""What an operator sees of the fair scheduler: who waits, how long, and the share of the
provider's limits each tenant got lately (``chatq queue``, the gateway's ``/metrics``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from chatq.shared import keys
from chatq.shared.scripts import lua
from redis import Redis

SHARE_WINDOW_S = 10  # the scheduler counts service released in windows this long
SHARE_WINDOWS = 6  # "the last minute": the current window and the five before it
OTHER = "other"  # the label of the tenants beyond the top ones, in metrics


@dataclass(frozen=True)
class TenantWait:
    """One tenant's jobs waiting in one band of one pool."""

    pool: str
    band: str
    tenant: str
    waiting: int
    oldest_wait_s: float
    virtual_time: float


class SchedulerView:
    """Reads the scheduler's state from Redis (a synchronous client)."""

    def __init__(self, redis: Redis, *, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.clock = clock
        self._waiting = redis.register_script(lua("chatq.shared.job_state", "waiting_jobs.lua"))

    def waits(self) -> list[TenantWait]:
        """Every backlogged tenant of every pool and band, longest wait first."""
        now = self.clock()
        found: list[TenantWait] = []
        for pool in sorted(_text(p) for p in self.redis.smembers(keys.SCHEDULER_POOLS)):
            flat = self._waiting(keys=[], args=[keys.SCHEDULER, pool])
            for i in range(0, len(flat), 5):
                band, tenant, waiting, oldest_us, vtime = flat[i : i + 5]
                oldest = int(oldest_us) / 1_000_000
                found.append(
                    TenantWait(
                        pool=pool,
                        band=_text(band),
                        tenant=_text(tenant),
                        waiting=int(waiting),
                        oldest_wait_s=max(0.0, now - oldest) if oldest else 0.0,
                        virtual_time=float(vtime),
                    )
                )
        return sorted(found, key=lambda w: -w.oldest_wait_s)

    def shares(self) -> dict[str, float]:
        """Each tenant's share of the weighted service released in the last minute."""
        window = int(self.clock() // SHARE_WINDOW_S)
        served: Counter[str] = Counter()
        with self.redis.pipeline(transaction=False) as pipe:
            for n in range(SHARE_WINDOWS):
                pipe.hgetall(f"{keys.SCHEDULER}share:{window - n}")
            for counts in pipe.execute():
                for tenant, amount in counts.items():
                    served[_text(tenant)] += float(amount)
        total = sum(served.values())
        return {tenant: amount / total for tenant, amount in served.most_common()} if total else {}


def top_with_other(values: dict[str, float], top: int) -> dict[str, float]:
    """The ``top`` largest values by label, the rest summed under ``OTHER``: a bounded set
    of metric labels however many tenants there are."""
    ranked = sorted(values.items(), key=lambda item: -item[1])
    kept = dict(ranked[:top])
    rest = ranked[top:]
    if rest:
        kept[OTHER] = kept.get(OTHER, 0.0) + sum(v for _, v in rest)
    return kept


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
