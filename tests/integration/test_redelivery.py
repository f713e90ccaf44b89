"""No lost or doubled work when a worker dies or is stopped mid-call."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import requests
from chatq.producers.jobs import prepare_job
from chatq.shared.jobs import JobStatus

from chatq.processes import kill
from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

FAST_REDELIVERY = {
    "CHATQ_VISIBILITY_TIMEOUT_S": "4",
    "CHATQ_JOB_LEASE_S": "3",
    "CHATQ_LOST_JOB_CHECK_S": "3",
}


two_workers = stack_fixture(
    scope="function",
    sim_args=["--ttft-ms", "200"],
    workers=2,
    extra_env={**FAST_REDELIVERY, "CHATQ_WORKER_CONCURRENCY": "20"},
    client_settings={"lost_job_check_s": 3.0},
)


def test_sigkill_mid_way_loses_no_job_and_doubles_none(two_workers):
    stack = two_workers
    redis = stack.settings_redis()
    victim = next(p for p in stack.parts if p.name.startswith("worker worker1"))
    with stack.client() as client:
        job_ids = [client.submit(f"job {i}", max_tokens=4) for i in range(300)]
        eventually(
            lambda: (
                sum(client.status(j).status is JobStatus.done for j in job_ids[:150]) >= 60 or None
            )
        )
        os.kill(victim.process.pid, signal.SIGKILL)
        results = [client.result(job_id, timeout=120) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 300
    for job_id in job_ids:  # each job ended once
        events = redis.xrange(f"chatq:events:{job_id}")
        assert [f["type"] for _, f in events] == ["end"]
    calls = Counter(e["job_id"] for e in stack.sim_requests() if e["outcome"] == "ok")
    called_twice = [j for j in job_ids if calls[j] == 2]
    assert all(1 <= calls[j] <= 2 for j in job_ids)
    # Only calls cut short by the kill are repeated: at most the victim's concurrency.
    assert len(called_twice) <= 20, len(called_twice)
    print(f"{len(called_twice)} jobs were in flight on the killed worker and ran again")


slow_worker = stack_fixture(
    scope="function", sim_args=["--ttft-ms", "1500"], extra_env={"CHATQ_SHUTDOWN_GRACE_S": "20"}
)


def test_sigterm_lets_in_flight_calls_finish(slow_worker):
    stack = slow_worker
    worker = next(p for p in stack.parts if p.name.startswith("worker"))
    with stack.client() as client:
        job_ids = [client.submit(f"slow {i}", max_tokens=4) for i in range(10)]
        eventually(
            lambda: all(client.status(j).status is JobStatus.in_progress for j in job_ids) or None,
            timeout=30,
            every=0.05,
        )
        os.kill(worker.process.pid, signal.SIGTERM)
        assert worker.process.wait(timeout=20) == 0
        results = [client.result(job_id, timeout=5) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 10


def test_a_job_whose_message_was_lost_runs_once_all_the_same(two_workers):
    """A worker killed after it took a message off the queue, before kombu recorded it as
    held, loses the message; the job is recorded but in no queue. A worker sends it again."""
    stack = two_workers
    with stack.client() as client:
        job, queue = prepare_job(
            client.settings, client.deployments, "lost", None, None, None, {"max_tokens": 4}
        )
        assert client.store.create(job, queue)  # recorded, its message gone
        sent = client.submit("sent", max_tokens=4)
        assert client.result(job.id, timeout=30).status is JobStatus.done
        assert client.result(sent, timeout=5).status is JobStatus.done
    calls = Counter(e["job_id"] for e in stack.sim_requests() if e["outcome"] == "ok")
    assert calls[job.id] == 1


# Two workers with the default lease and checks, and answers that take 3 s: each holds
# up to its 200 threads' worth of jobs.
holding_workers = stack_fixture(
    scope="function", sim_args=["--ttft-ms", "3000", "--tokens-per-s", "0"], workers=2, gateway=True
)


def test_a_worker_killed_holding_many_jobs_costs_seconds_not_minutes(holding_workers):
    stack = holding_workers
    redis = stack.settings_redis()
    url = stack.gateway_url
    victim = next(p for p in stack.parts if p.name.startswith("worker worker1"))
    body = {"model": "sim-mini", "max_tokens": 4}
    job_ids = [
        requests.post(
            f"{url}/jobs", json={**body, "messages": [{"role": "user", "content": f"q {i}"}]}
        ).json()["id"]
        for i in range(400)
    ]

    def held_by_victim() -> int:
        with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(f"chatq:job:{job_id}", "status", "worker")
            rows = pipe.execute()
        return sum(
            1 for status, worker in rows if status == "in_progress" and worker == victim.address
        )

    held = eventually(lambda: n if (n := held_by_victim()) >= 100 else None, timeout=30)
    kill(victim)
    killed_at = time.time()
    with stack.client() as client:
        results = [client.result(job_id, timeout=120) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 400
    for job_id in job_ids:  # each job ended once
        assert [f["type"] for _, f in redis.xrange(f"chatq:events:{job_id}")] == ["end"]
    last = max(r.timings.finished_at for r in results) - killed_at
    print(f"the killed worker held {held} jobs; the last job ended {last:.1f} s after the kill")
    assert last <= 45
