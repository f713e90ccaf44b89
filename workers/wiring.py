"""A worker process's parts, put together once from the settings."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable

from chatq.shared.broker import broker_db
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.jobs import ChatJob, ChatResult
from chatq.shared.sessions import SessionStore, UserStore
from chatq.shared.settings import Settings
from chatq.shared.store import JobStore
from chatq.workers.coalesce import Coalescer
from chatq.workers.end_listeners import EndMetrics, SessionTurns, TenantTokens, UserIndex, Webhooks
from chatq.workers.gathered_calls import GatheredCalls
from chatq.workers.gathered_embeddings import GatheredEmbeddings
from chatq.workers.health import DeploymentHealth
from chatq.workers.hooks import load_hooks
from chatq.workers.lifecycle import JobLifecycle
from chatq.workers.limiter import ClusterLimiter
from chatq.workers.provider import ProviderClient
from chatq.workers.provider_call import ProviderCalls
from chatq.workers.runner import ChatRunner
from chatq.workers.sharing import SharedAnswers


def inline_wait_s(settings: Settings) -> float:
    """The longest a job waits for its slot in a worker thread; past that it waits in Redis.
    Under the fair scheduler that is short, so that a job released ahead of its turn (or
    sent from outside the scheduler) cannot book a slot far ahead of others waiting."""
    if settings.scheduler.mode == "fair":
        return min(settings.max_inline_wait_s, settings.scheduler.max_wait_s)
    return settings.max_inline_wait_s


def build_runner(
    settings: Settings,
    *,
    send_webhook: Callable[[ChatJob, ChatResult], None],
    on_reload_error: Callable[[Exception], None] | None = None,
) -> ChatRunner:
    store = JobStore.from_settings(settings)
    registry = DeploymentRegistry(settings, on_error=on_reload_error)
    lifecycle = JobLifecycle(
        store,
        worker_name=f"{socket.gethostname()}:{os.getpid()}",  # Celery's node name, once known
        lease_s=settings.job_lease_s,
        clock=time.time,
        task_events_db=broker_db(settings.effective_redis_url) if settings.flower_events else None,
        before_end=[SessionTurns(SessionStore(store.redis, settings))],
        listeners=[
            UserIndex(UserStore(store.redis)),
            TenantTokens(store),
            EndMetrics(),
            Webhooks(send_webhook),
        ],
    )
    provider = ProviderClient(
        timeouts=settings.provider_timeout, pool_size=max(10, settings.worker_concurrency)
    )
    calls = ProviderCalls(
        provider,
        registry,
        ClusterLimiter(store.redis),
        DeploymentHealth(store.redis),
        settings.retry,
        rng=random.Random(),
        max_inline_wait_s=inline_wait_s(settings),
    )
    hooks = load_hooks(settings.hooks)
    runner = ChatRunner(lifecycle, calls, hooks=hooks)
    coalescer = Coalescer(
        store.redis, cache_ttl_s=settings.cache_ttl_s, lease_s=settings.job_lease_s
    )
    runner.sharing = SharedAnswers(
        coalescer, lifecycle, registry, clock=time.time, follow_timeout_s=settings.wait_timeout_s
    )
    if settings.gather_window_ms > 0:
        runner.gathered = GatheredCalls(
            calls,
            lifecycle,
            hooks,
            runner.own_call,
            clock=time.time,
            window_s=settings.gather_window_ms / 1000,
            max_size=settings.gather_max_size,
            coalescer=coalescer,
        )
        runner.embeddings = GatheredEmbeddings(
            calls,
            lifecycle,
            runner.own_call,
            runner.end,
            clock=time.time,
            window_s=settings.gather_window_ms / 1000,
        )
    return runner
