"""The limiter's Lua scripts against a real Redis: the same schedule as the pure functions,
shared by several processes."""

from __future__ import annotations

import itertools
import multiprocessing

import pytest
from chatq.shared.deployments import Deployment
from chatq.workers.health import FAILURE_THRESHOLD, DeploymentHealth
from chatq.workers.limiter import ClusterLimiter, Deferred, Lease, gcra_slot, interval_ms
from redis import Redis


def deployment(**limits) -> Deployment:
    return Deployment(alias="m", name="d1", base_url="http://x", **limits)


def fixed_clock(now: list[float]):
    return lambda: now[0]


def test_booked_slots_follow_the_pure_schedule_exactly(redis_client):
    now = [1_000_000.0]
    limiter = ClusterLimiter(redis_client, now_ms=fixed_clock(now))
    dep = deployment(rpm=600)
    interval = interval_ms(600)
    tat, expected, booked = 0.0, [], []
    for step in (0, 0, 0, 30, 250, 0, 1000):
        now[0] += step
        wait, tat = gcra_slot(tat, now[0], interval, 0.0)
        expected.append(now[0] + wait)
        lease = limiter.book(dep, 0, max_wait_s=60)
        assert isinstance(lease, Lease)
        booked.append(now[0] + lease.wait_s * 1000)
    assert booked == pytest.approx(expected, abs=1e-3)


def test_tokens_are_charged_and_settled(redis_client):
    now = [5_000_000.0]
    limiter = ClusterLimiter(redis_client, now_ms=fixed_clock(now))
    dep = deployment(tpm=60_000)  # a token a millisecond, paced a touch slower
    per_token = interval_ms(60_000)
    first = limiter.book(dep, 100, max_wait_s=60, exact_estimate=False)
    second = limiter.book(dep, 100, max_wait_s=60)
    assert first.wait_s == 0
    assert second.wait_s * 1000 == pytest.approx(100 * per_token, abs=0.001)
    limiter.settle(first, 40)  # a guessed length: 60 tokens come back
    third = limiter.book(dep, 10, max_wait_s=60)
    assert third.wait_s * 1000 == pytest.approx(140 * per_token, abs=0.001)


def test_calls_in_flight_are_capped_until_one_ends(redis_client):
    limiter = ClusterLimiter(redis_client)
    dep = deployment(max_concurrency=3)
    leases = [limiter.book(dep, 0, max_wait_s=1) for _ in range(3)]
    assert all(isinstance(lease, Lease) for lease in leases)
    with pytest.raises(Deferred):  # asked to come back
        limiter.book(dep, 0, max_wait_s=1)
    limiter.settle(leases[0], None)
    assert isinstance(limiter.book(dep, 0, max_wait_s=1), Lease)


def test_a_pause_holds_limited_and_unlimited_deployments(redis_client):
    limiter = ClusterLimiter(redis_client)
    limited, unlimited = deployment(rpm=6000), deployment()
    ClusterLimiter(redis_client).pause(limited, 5)  # another worker got the 429
    with pytest.raises(Deferred) as limited_wait:
        ClusterLimiter(redis_client).book(limited, 0, max_wait_s=1)
    assert 4 < limited_wait.value.delay_s <= 5
    booked = ClusterLimiter(redis_client).book(unlimited, 0, max_wait_s=10)
    assert isinstance(booked, Lease) and 4 < booked.wait_s <= 5
    with pytest.raises(Deferred) as unlimited_wait:
        limiter.book(unlimited, 0, max_wait_s=1)
    assert unlimited_wait.value.delay_s == pytest.approx(booked.wait_s, abs=0.1)


def book_many(url: str, count: int, queue) -> None:
    """One worker process booking ``count`` calls on the Redis server's clock."""
    redis = Redis.from_url(url, decode_responses=True)
    limiter = ClusterLimiter(redis)
    dep = deployment(rpm=6000)
    queue.put([limiter.book(dep, 0, max_wait_s=60).slot_ms for _ in range(count)])


def test_four_processes_share_one_schedule(redis_server, redis_client):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    url = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    processes = [context.Process(target=book_many, args=(redis_url, 50, queue)) for _ in range(4)]
    for p in processes:
        p.start()
    sends = sorted(s for _ in processes for s in queue.get(timeout=60))
    for p in processes:
        p.join(10)
    interval = interval_ms(6000)
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert min(gaps) >= interval - 0.01  # no two processes got the same slot
    assert sends[-1] - sends[0] == pytest.approx(199 * interval, rel=0.05)


def record_failures(url: str, count: int) -> None:
    health = DeploymentHealth(Redis.from_url(url, decode_responses=True))
    for _ in range(count):
        health.record_failure(deployment())


def test_failures_from_several_processes_cool_a_deployment_down(redis_client):
    kwargs = redis_client.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
    context = multiprocessing.get_context("spawn")
    per_process = (FAILURE_THRESHOLD + 1) // 2
    processes = [context.Process(target=record_failures, args=(url, per_process)) for _ in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(30)
    assert redis_client.exists("chatq:dep:d1:cooldown")
    assert int(redis_client.hget("chatq:dep:d1:stats", "cooldowns")) == 1


def test_the_send_gate_keeps_each_quantum_window_within_its_share(redis_client):
    now = [10_000.0]
    limiter = ClusterLimiter(redis_client, now_ms=lambda: now[0])
    dep = deployment(rpm=600)  # 10 a second; the gate's window is 1.08 s
    leases = [Lease(dep.name, f"l{i}", 0, 0.0) for i in range(12)]
    for i, lease in enumerate(leases[:10]):
        now[0] = 10_000 + i * 10  # ten calls sent close together (late wakers bunching up)
        assert limiter.gate(dep, lease) == 0
    wait = limiter.gate(dep, leases[10])
    assert wait == pytest.approx((10_000 + 1080 - now[0]) / 1000)  # until the first leaves
    now[0] = 10_000 + 1080
    assert limiter.gate(dep, leases[10]) == 0
    assert limiter.gate(dep, leases[11]) > 0


def test_a_call_sent_late_is_counted_from_when_it_left(redis_client):
    now = [10_000.0]
    limiter = ClusterLimiter(redis_client, now_ms=lambda: now[0])
    dep = deployment(rpm=60, tpm=60_000)  # one call a second
    first, second = Lease(dep.name, "a", 30, 0.0), Lease(dep.name, "b", 30, 0.0)
    assert limiter.gate(dep, first) == 0
    now[0] = 10_060  # its request only left now
    assert limiter.restamp(dep, first)
    now[0] = 10_000 + 1080  # the gate's own stamp has left the window, the real send not
    assert limiter.gate(dep, second) == pytest.approx(0.06)
    assert not limiter.restamp(deployment(), first)  # no gate: nothing to move


def test_the_send_gate_counts_tokens_too_and_leaves_unlimited_deployments_alone(redis_client):
    now = [0.0]
    limiter = ClusterLimiter(redis_client, now_ms=lambda: now[0])
    dep = deployment(tpm=6000)  # 100 tokens a second
    assert limiter.gate(dep, Lease(dep.name, "a", 60, 0.0)) == 0
    assert limiter.gate(dep, Lease(dep.name, "b", 60, 0.0)) == pytest.approx(1.08)
    assert limiter.gate(dep, Lease(dep.name, "c", 40, 0.0)) == 0
    assert limiter.gate(deployment(), Lease("x", "", 10**6, 0.0)) == 0
    assert limiter.gate(deployment(rpm=600, quantum_s=0), Lease("y", "d", 0, 0.0)) == 0
