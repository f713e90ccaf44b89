"""Releases jobs waiting in the fair scheduler as their pools get room: a thread in every
worker process, all of them sharing the scheduler in Redis (each release is one atomic step in
``dispatch_jobs.lua``, so two dispatchers never release one job)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.signals import worker_ready
from chatq.shared import keys
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.job_state import check_time
from chatq.shared.job_state.scheduling import Dispatched, PoolLimits, dispatch, dispatched
from chatq.shared.redis_clients import sync_client
from chatq.shared.scripts import ScriptCall, chain
from chatq.shared.settings import SchedulerPolicy, get_settings
from chatq.workers.limiter import CONCURRENCY_POLL_MS, Pacing
from chatq.workers.recovery import loop_round
from redis import Redis

log = logging.getLogger("chatq.worker")

IDLE_S = 0.1  # how often to look when nothing waits


def pool_limits(registry: DeploymentRegistry, alias: str, policy: SchedulerPolicy) -> PoolLimits:
    """The pool of ``alias`` is limited by its first deployment (the others take its overflow
    as fallbacks do); released jobs book their slot within the policy's horizon."""
    first = registry.for_alias(alias)[0]
    pacing = Pacing.of(first)
    return PoolLimits(
        rpm_key=keys.deployment_key(first.name, "rpm"),
        tpm_key=keys.deployment_key(first.name, "tpm"),
        paused_key=keys.deployment_key(first.name, "paused"),
        inflight_key=keys.deployment_key(first.name, "inflight"),
        ms_per_request=pacing.ms_per_request,
        ms_per_token=pacing.ms_per_token,
        max_concurrency=first.max_concurrency or 0,
        horizon_ms=policy.horizon_ms,
        stale_ms=policy.stale_s * 1000,
        poll_ms=CONCURRENCY_POLL_MS,
    )


def unserved_limits(policy: SchedulerPolicy) -> PoolLimits:
    """The limits of a pool no deployment serves: none, so that its jobs go on to fail."""
    return PoolLimits("", "", "", "", 0.0, 0.0, 0, policy.horizon_ms, policy.stale_s * 1000, 0)


class Dispatcher:
    def __init__(
        self,
        redis: Redis,
        registry: DeploymentRegistry,
        policy: SchedulerPolicy,
        *,
        lost_job_check_s: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.redis = redis
        self.registry = registry
        self.policy = policy
        self.lost_job_check_s = lost_job_check_s
        self.clock = clock
        self.sleep = sleep
        self._scripts: dict[str, Any] = {}

    def dispatch_once(self) -> list[Dispatched]:
        """One dispatch of every pool, in one round trip."""
        check_at = check_time(self.clock() + self.lost_job_check_s)
        calls: list[ScriptCall] = []
        known = self.registry.aliases()
        for alias in known:
            limits = pool_limits(self.registry, alias, self.policy)
            calls.append(dispatch(alias, limits, self.policy, check_at=check_at))
        # Jobs of a model no deployment here serves are released at once: a worker then ends
        # each, saying no deployment serves its model, rather than leave it waiting for good.
        for pool in sorted(self.waiting_pools() - set(known)):
            calls.append(
                dispatch(pool, unserved_limits(self.policy), self.policy, check_at=check_at)
            )
        if not calls:
            return []
        source, all_keys, all_args = chain(calls)
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts.setdefault(source, self.redis.register_script(source))
        replies = script(keys=all_keys, args=all_args)
        return [dispatched(reply) for reply in replies]

    def waiting_pools(self) -> set[str]:
        pools = self.redis.smembers(keys.SCHEDULER_POOLS)
        return {p.decode() if isinstance(p, bytes) else p for p in pools}

    def pause_after(self, results: list[Dispatched]) -> float:
        """How long to sleep before the next dispatch: until the soonest room, within the
        tick; at once while a pool may release more."""
        waits = [r.wait_s for r in results if r.wait_s is not None]
        if not waits:
            return IDLE_S
        tick = self.policy.tick_ms / 1000
        return min(tick, max(0.002, min(waits)))

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            pause = IDLE_S
            with loop_round("dispatch"):
                pause = self.pause_after(self.dispatch_once())
            self.sleep(pause)


@worker_ready.connect
def start_dispatcher(sender: Any = None, **_: Any) -> None:
    """Each worker node dispatches, from the start (jobs may wait before any arrives), and in
    either mode: producers set to ``fair`` still have their jobs released by workers that are
    not."""
    settings = get_settings()
    dispatcher = Dispatcher(
        sync_client(settings.effective_redis_url),
        DeploymentRegistry(settings),
        settings.scheduler,
        lost_job_check_s=settings.lost_job_check_s,
    )
    threading.Thread(target=dispatcher.run_forever, name="chatq-dispatcher", daemon=True).start()
