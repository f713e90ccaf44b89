"""A job's claim and its one end, and the listeners that hear of it (in-memory store)."""

from __future__ import annotations

import pytest
from chatq.shared.completion import text_completion
from chatq.shared.jobs import ChatJob, ChatRequest, ChatResult, JobStatus
from chatq.shared.store import Claimed
from chatq.workers.lifecycle import JobEnd, JobLifecycle
from chatq.workers.limiter import Deferred

from tests.unit.workers.fakes import FakeStore


def job() -> ChatJob:
    return ChatJob(request=ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]))


class Heard:
    def __init__(self) -> None:
        self.ends: list[JobEnd] = []

    def job_ended(self, end: JobEnd) -> None:
        self.ends.append(end)


class Broken:
    def job_ended(self, end: JobEnd) -> None:
        raise RuntimeError("listener bug")


def lifecycle(store: FakeStore, *listeners) -> JobLifecycle:
    return JobLifecycle(
        store,  # type: ignore[arg-type]
        worker_name="w1",
        lease_s=30,
        clock=lambda: 5.0,
        listeners=listeners,
    )


def done(one: ChatJob) -> ChatResult:
    return ChatResult(job_id=one.id, status=JobStatus.done, completion=text_completion("ok"))


def test_a_claimed_job_is_renewed_until_it_ends_and_every_listener_hears_once():
    store, heard = FakeStore(), Heard()
    life = lifecycle(store, Broken(), heard)  # a failing listener does not stop the others
    one = job()
    assert life.claim(one) == Claimed(1)
    assert life.running == {one.id}
    life.end(one, done(one))
    life.end(one, done(one))  # a second end changes nothing
    assert life.running == set() and store.ends == 1
    assert [e.job.id for e in heard.ends] == [one.id]
    assert heard.ends[0].result.timings.finished_at == 5.0


def test_a_job_held_by_another_live_worker_is_deferred_and_an_ended_one_skipped():
    store = FakeStore()
    life = lifecycle(store)
    held, ended = job(), job()
    store.busy[held.id] = 4.0
    with pytest.raises(Deferred) as deferred:
        life.claim(held)
    assert deferred.value.delay_s == 4.0
    store.status[ended.id] = JobStatus.cancelled
    assert life.claim(ended) is None
    assert life.running == set()


def test_what_must_be_in_place_when_a_caller_sees_the_end_is_done_before_it():
    store = FakeStore()
    seen: list[JobStatus | None] = []

    class Session:
        def job_ended(self, end: JobEnd) -> None:
            seen.append(store.status.get(end.job.id))  # not yet ended when told

    life = JobLifecycle(
        store,  # type: ignore[arg-type]
        worker_name="w1",
        lease_s=30,
        clock=lambda: 5.0,
        before_end=[Session()],
    )
    one = job()
    life.claim(one)
    life.end(one, done(one))
    assert seen == [JobStatus.in_progress] and store.status[one.id] is JobStatus.done
