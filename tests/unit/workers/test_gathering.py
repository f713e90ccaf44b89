"""Which requests may share a multi-choice call, and how the gatherer groups jobs by time."""

from __future__ import annotations

import threading
import time

import pytest
from chatq.shared.jobs import ChatJob, ChatRequest
from chatq.workers.gathering import Gatherer, gather_key


def request(**fields) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], **fields)


def job(**fields) -> ChatJob:
    return ChatJob(request=request(**fields))


def test_only_sampled_plain_requests_that_do_not_coalesce_are_batched():
    assert gather_key(request(temperature=0.7)) is not None
    assert gather_key(request(temperature=0.7)) == gather_key(request(temperature=0.7))
    assert gather_key(request(temperature=0.7)) != gather_key(request(temperature=0.8))
    assert gather_key(request()) is None  # deterministic: coalesced instead
    assert gather_key(request(temperature=0)) is None
    assert gather_key(request(temperature=0.7, coalesce=True)) is None  # shares one answer
    assert gather_key(request(temperature=0.7, stream=True)) is None
    assert gather_key(request(temperature=0.7, n=1)) is None


def run_together(gatherer: Gatherer, jobs: list[tuple[str, ChatJob]], limit: int) -> dict:
    """Submits the jobs from threads of their own at once, their keys made hot first."""
    for key in {key for key, _ in jobs}:
        gatherer._seen_recently(key)
    outcomes: dict[str, object] = {}

    def submit(key: str, item: ChatJob) -> None:
        try:
            outcomes[item.id] = gatherer.submit(key, item, limit=limit)
        except Exception as exc:
            outcomes[item.id] = exc

    threads = [threading.Thread(target=submit, args=pair) for pair in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return outcomes


def test_jobs_of_one_key_within_the_window_run_as_one_group():
    groups: list[list[str]] = []

    def run_group(jobs):
        groups.append([j.id for j in jobs])
        return {j.id: f"answer {i}" for i, j in enumerate(jobs)}

    gatherer = Gatherer(run_group, window_s=0.3, max_size=32)
    jobs = [job(temperature=1) for _ in range(5)] + [job(temperature=0.5) for _ in range(2)]
    outcomes = run_together(gatherer, [(gather_key(j.request), j) for j in jobs], limit=8)
    assert sorted(len(g) for g in groups) == [2, 5]
    assert set(outcomes) == {j.id for j in jobs}
    assert all(isinstance(v, str) for v in outcomes.values())


def test_a_full_gathering_runs_before_the_window_ends():
    groups: list[int] = []
    gatherer = Gatherer(
        lambda jobs: groups.append(len(jobs)) or {j.id: None for j in jobs},
        window_s=30,
        max_size=32,
    )
    started = time.monotonic()
    run_together(gatherer, [("k", job()) for _ in range(4)], limit=2)
    assert groups == [2, 2]
    assert time.monotonic() - started < 10


def test_a_failing_group_raises_in_every_job_thread():
    def run_group(jobs):
        raise RuntimeError("provider exploded")

    gatherer = Gatherer(run_group, window_s=0.2, max_size=8)
    outcomes = run_together(gatherer, [("k", job()) for _ in range(3)], limit=8)
    assert all(isinstance(v, RuntimeError) for v in outcomes.values())


def test_an_outcome_that_is_an_exception_is_raised_in_its_own_thread_only():
    jobs = [job(), job()]

    def run_group(group):
        return {group[0].id: ValueError("deferred"), group[1].id: "fine"}

    gatherer = Gatherer(run_group, window_s=0.2, max_size=8)
    outcomes = run_together(gatherer, [("k", j) for j in jobs], limit=8)
    assert sum(isinstance(v, ValueError) for v in outcomes.values()) == 1
    assert "fine" in outcomes.values()


@pytest.mark.parametrize("size", [1, 3])
def test_max_size_bounds_a_gathering(size):
    groups: list[int] = []
    gatherer = Gatherer(
        lambda jobs: groups.append(len(jobs)) or {j.id: None for j in jobs},
        window_s=0.2,
        max_size=size,
    )
    run_together(gatherer, [("k", job()) for _ in range(3)], limit=8)
    assert max(groups) == size


def test_a_one_off_request_is_sent_at_once_and_makes_its_key_hot():
    now = [0.0]
    groups: list[int] = []
    gatherer = Gatherer(
        lambda jobs: groups.append(len(jobs)) or {j.id: None for j in jobs},
        window_s=30,
        max_size=8,
        hot_s=1.0,
        clock=lambda: now[0],
    )
    started = time.monotonic()
    gatherer.submit("k", job(), limit=8)
    assert time.monotonic() - started < 5 and groups == [1]
    assert gatherer._seen_recently("k")  # seen again within hot_s
    now[0] = 10.0
    assert not gatherer._seen_recently("k")  # cold again
