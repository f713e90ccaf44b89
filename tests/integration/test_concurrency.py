"""A worker with hundreds of threads keeps hundreds of calls in flight at once, and holds no
more messages than it runs."""

from __future__ import annotations

import time

import pytest
from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture
from tests.support.waiting import ended_count

pytestmark = pytest.mark.slow

THREADS = 300
TTFT_MS = 3000


wide_worker = stack_fixture(
    scope="function",
    sim_args=["--ttft-ms", str(TTFT_MS), "--tokens-per-s", "0"],
    extra_env={"CHATQ_WORKER_CONCURRENCY": str(THREADS)},
)


def test_300_slow_calls_at_once_each_run_once_without_detours(wide_worker):
    """More threads than redis-py's default pool of 100 connections: none may fail to get
    one (that looked like Redis being down, and sent jobs round the queue again)."""
    with wide_worker.client() as client:
        job_ids = [client.submit(f"slow question {i}", max_tokens=4) for i in range(THREADS)]
        results = [client.result(job_id, timeout=60) for job_id in job_ids]
        records = [client.status(job_id) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * THREADS
    assert {(r.attempts, r.deferrals) for r in records} == {(1, 0)}
    # No call can end before TTFT_MS, so if every call reached the simulator within that
    # time of the first, all of them were in flight together.
    arrivals = [e["t"] for e in wide_worker.sim_requests() if e["job_id"] in set(job_ids)]
    assert len(arrivals) == THREADS
    assert max(arrivals) - min(arrivals) < TTFT_MS / 1000


NARROW = 4


narrow_worker = stack_fixture(
    scope="function",
    sim_args=["--ttft-ms", "1500", "--tokens-per-s", "0"],
    extra_env={"CHATQ_WORKER_CONCURRENCY": str(NARROW)},
)


def test_a_worker_holds_no_more_messages_than_it_runs(narrow_worker):
    """A worker that dies strands only the jobs it was running: it reserves no backlog."""
    redis = narrow_worker.settings_redis()
    with narrow_worker.client() as client:
        job_ids = [client.submit(f"one of many {i}", max_tokens=4) for i in range(20)]
        held, queued = [], []
        while not client.store.get(job_ids[-1]).status.is_terminal:
            waiting = redis.llen(narrow_worker.settings.interactive_queue)
            queued.append(waiting)
            held.append(len(job_ids) - waiting - ended_count(redis, job_ids))  # out of the queue
            time.sleep(0.05)  # a sample every 50 ms while the jobs run
        assert all(client.result(j).status is JobStatus.done for j in job_ids)
    assert max(held) <= NARROW
    assert max(queued) >= 20 - NARROW - 1  # the rest waited in the queue, for any worker
