"""A worker lets go of a job's claim whatever way the job leaves it (real Redis, no provider).

A job left in the runner's running set has its claim renewed for ever, so every redelivery
of it finds it busy and is deferred again: the job never ends.
"""

from __future__ import annotations

import random

import pytest
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.jobs import ChatJob, ChatRequest
from chatq.shared.settings import ProviderTimeouts, RetryPolicy, Settings
from chatq.shared.store import JobStore
from chatq.workers.coalesce import Coalescer
from chatq.workers.health import DeploymentHealth
from chatq.workers.lifecycle import JobLifecycle
from chatq.workers.limiter import ClusterLimiter
from chatq.workers.provider import ProviderClient
from chatq.workers.provider_call import ProviderCalls
from chatq.workers.runner import ChatRunner
from chatq.workers.sharing import SharedAnswers
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

GONE = RedisConnectionError("Too many connections")


class FailingLimiter(ClusterLimiter):
    def book(self, *args, **kwargs):
        raise GONE


class FailingCoalescer(Coalescer):
    def done(self, *args, **kwargs) -> None:
        raise GONE


def runner_on(redis: Redis, redis_url: str) -> ChatRunner:
    settings = Settings(_env_file=None, redis_url=redis_url, models=["sim-mini"])
    store = JobStore(redis, result_ttl_s=60, events_ttl_s=60)
    registry = DeploymentRegistry(settings)
    lifecycle = JobLifecycle(store, worker_name="w1", lease_s=30, clock=lambda: 1000.0)
    calls = ProviderCalls(
        ProviderClient(timeouts=ProviderTimeouts()),
        registry,
        FailingLimiter(redis),
        DeploymentHealth(redis),
        RetryPolicy(),
        rng=random.Random(0),
    )
    runner = ChatRunner(lifecycle, calls)
    coalescer = FailingCoalescer(redis, cache_ttl_s=60, lease_s=30)
    runner.sharing = SharedAnswers(
        coalescer, lifecycle, registry, clock=lambda: 1000.0, follow_timeout_s=1
    )
    return runner


def test_a_leader_whose_call_and_cleanup_both_fail_lets_go_of_its_claim(
    redis_client: Redis, redis_server: str
):
    runner = runner_on(redis_client, redis_server)
    job = ChatJob(
        request=ChatRequest(model="sim-mini", messages=[{"role": "user", "content": "hi"}])
    )
    store = runner.lifecycle.store
    store.create(job, "chatq.interactive")
    with pytest.raises(RedisConnectionError):
        runner.run(job)
    assert runner.lifecycle.running == set()
    assert store.get(job.id).status.value == "in_progress"  # claimed, lease lapsing
