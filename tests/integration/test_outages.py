"""Infrastructure faults under load: Redis restarted mid-way, a worker stopped with SIGTERM.
No accepted job is lost; while Redis is down, producers get a clear 503-style error."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from chatq.shared import keys
from chatq.shared.errors import QueueUnavailable
from chatq.shared.jobs import JobStatus

from chatq.processes import Part, free_port, kill, stop
from chatq.stack import start_redis
from tests.support.stacks import stack_fixture
from tests.support.waiting import ended_count, eventually


@dataclass
class OwnRedis:
    """A Redis of the test's own, keeping an append-only file: stopped and started again on
    its port, as an operator restarts one."""

    data: Path
    port: int = field(default_factory=free_port)
    part: Part | None = None

    @property
    def address(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.part = start_redis(self.port, self.data, persist=True)

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits."""
        if self.part is not None:
            stop([self.part])
            self.part = None


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path / "redis")
    redis.start()
    yield redis
    redis.stop()


def on_own_redis(own_redis: OwnRedis) -> dict[str, str]:
    return {"redis_server": own_redis.address}


restarted = stack_fixture(
    scope="function",
    from_fixtures=on_own_redis,
    workers=2,
    gateway=True,
    sim_args=["--ttft-ms", "300"],
    extra_env={"CHATQ_VISIBILITY_TIMEOUT_S": "10", "CHATQ_JOB_LEASE_S": "5"},
)


def test_a_redis_restart_under_load_loses_no_job(restarted, own_redis):
    stack, gateway = restarted, restarted.gateway_url
    with stack.client() as client:
        job_ids = [client.submit(f"survive {i}", max_tokens=5) for i in range(200)]
        records = stack.settings_redis()
        eventually(
            lambda: ended_count(records, job_ids) >= 20 or None, timeout=30, what="the first jobs"
        )
        own_redis.stop()
        with pytest.raises(QueueUnavailable, match="not enqueued"):
            client.submit("while Redis is down", max_tokens=5)
        body = {"model": "sim-mini", "messages": [{"role": "user", "content": "down?"}]}
        down = requests.post(f"{gateway}/chat/completions", json=body, timeout=30)
        assert down.status_code == 503 and down.headers["Retry-After"]
        assert down.json()["error"]["code"] == "queue_unavailable"
        time.sleep(3)  # the outage: Redis stays down a while under load
        own_redis.start()
        results = [client.result(job_id, timeout=180) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 200
    again = requests.post(f"{gateway}/chat/completions", json=body, timeout=30)
    assert again.status_code == 200


terminated = stack_fixture(
    scope="function",
    workers=2,
    sim_args=["--ttft-ms", "200"],
    extra_env={"CHATQ_SHUTDOWN_GRACE_S": "20", "CHATQ_WORKER_CONCURRENCY": "50"},
)


def test_sigterm_to_a_worker_under_load_loses_and_repeats_nothing(terminated):
    stack = terminated
    stack.sim_reset()
    victim = next(p for p in stack.parts if p.name.startswith("worker worker1"))
    with stack.client() as client:
        job_ids = [client.submit(f"terminated {i}", max_tokens=5) for i in range(300)]
        records = stack.settings_redis()
        eventually(
            lambda: ended_count(records, job_ids) >= 50 or None, timeout=30, what="the first jobs"
        )
        os.kill(victim.process.pid, signal.SIGTERM)
        assert victim.process.wait(timeout=30) == 0  # a warm shutdown, in-flight calls done
        results = [client.result(job_id, timeout=120) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 300
    calls = Counter(entry["job_id"] for entry in stack.sim_requests())
    assert set(calls) == set(job_ids) and max(calls.values()) == 1


limited = stack_fixture(
    scope="function",
    from_fixtures=on_own_redis,
    workers=2,
    sim_args=["--rpm", "600", "--quantum-s", "1"],
    extra_env={"CHATQ_PROVIDER_RPM": "600", "CHATQ_JOB_LEASE_S": "5"},
)


def test_jobs_waiting_in_the_scheduler_survive_a_worker_sigkill_and_a_redis_restart(
    limited, own_redis
):
    """Under a 600 rpm limit most of 80 jobs wait in the fair scheduler, in Redis: a worker
    SIGKILLed and Redis restarted from its append-only file lose none, and each job reaches
    the provider once, except those the killed worker had in flight (run again on lapse)."""
    stack = limited
    records = stack.settings_redis()
    with stack.client() as client:
        job_ids = [client.submit(f"wait {i}", max_tokens=5, tenant=f"t{i % 4}") for i in range(80)]
        assert records.hlen(keys.SCHEDULER_ENTRIES) > 50  # waiting, not on a queue
        kill(next(p for p in stack.parts if p.name.startswith("worker worker1")))
        time.sleep(1)  # the scenario: the dead worker's jobs wait a moment before Redis goes
        own_redis.stop()
        time.sleep(1)  # the outage: down for a second
        own_redis.start()
    with stack.client() as client:  # connections made after the restart
        results = [client.result(job_id, timeout=120) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 80
    calls = Counter(entry["job_id"] for entry in stack.sim_requests())
    assert set(calls) == set(job_ids)
    assert sum(calls.values()) - 80 <= 3  # calls the killed worker had in flight, again
    assert stack.sim_stats()["rate_limited"] == 0
