"""The job store and its Lua scripts against a real Redis: a job ends exactly once."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from chatq.shared.async_store import AsyncJobStore
from chatq.shared.completion import text_completion
from chatq.shared.errors import JobNotFound, JobTimeout
from chatq.shared.job_state.dead_letters import DeadLetters
from chatq.shared.jobs import ChatJob, ChatRequest, ChatResult, JobError, JobStatus
from chatq.shared.protocol import DeltaEvent, EndEvent
from chatq.shared.settings import Settings
from chatq.shared.store import AlreadyEnded, Busy, Claimed, JobStore, cancelled_result


@pytest.fixture()
def store(redis_client) -> JobStore:
    return JobStore(redis_client, result_ttl_s=60, events_ttl_s=60)


def text_chunk(piece: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}


def new_job(stream: bool = False) -> ChatJob:
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], stream=stream)
    return ChatJob(request=request)


def done(job: ChatJob, content: str = "ok") -> ChatResult:
    return ChatResult(job_id=job.id, status=JobStatus.done, completion=text_completion(content))


def test_lifecycle_queued_in_progress_done(store):
    job = new_job()
    store.create(job, "q")
    assert store.get(job.id).status is JobStatus.queued
    assert store.start(job) == Claimed(1)
    assert store.get(job.id).status is JobStatus.in_progress
    assert store.finish(done(job))
    record = store.get(job.id)
    assert record.status is JobStatus.done and record.result.content == "ok"
    assert store.wait(job.id, timeout=1).content == "ok"


def test_a_job_ends_exactly_once(store):
    job = new_job()
    store.create(job, "q")
    store.start(job)
    assert store.finish(done(job, "first"))
    assert not store.finish(done(job, "second"))
    assert not store.cancel(job.id)
    assert store.get(job.id).result.content == "first"
    ends = [e for _, e in store.redis.xrange(f"chatq:events:{job.id}") if e["type"] == "end"]
    assert len(ends) == 1


def test_an_ended_job_is_not_started_again(store):
    job = new_job()
    store.create(job, "q")
    assert store.cancel(job.id)
    assert store.start(job) == AlreadyEnded(JobStatus.cancelled)


def test_a_live_claim_keeps_a_redelivered_job_from_running_twice(redis_client):
    now = [1000.0]
    store = JobStore(redis_client, result_ttl_s=60, events_ttl_s=60, clock=lambda: now[0])
    job = new_job()
    store.create(job, "q")
    assert store.start(job, lease_s=10) == Claimed(1)
    now[0] += 4
    assert store.start(job, lease_s=10) == Busy(6.0)
    assert store.renew_leases([job.id], lease_s=10) == 1
    now[0] += 9
    assert store.start(job, lease_s=10) == Busy(1.0)
    now[0] += 2  # the first worker died: its claim lapsed, so the job runs again
    assert store.start(job, lease_s=10) == Claimed(2)


def test_renewing_leaves_ended_jobs_alone(store):
    job = new_job()
    store.create(job, "q")
    store.start(job)
    store.finish(done(job))
    assert store.renew_leases([job.id, "job_gone"]) == 0
    assert not store.redis.exists("chatq:job:job_gone")


def test_job_sent_without_a_record_gets_one(store):
    job = new_job()
    assert store.start(job) == Claimed(1)
    assert store.get(job.id).model == "m"


def test_unknown_job(store):
    with pytest.raises(JobNotFound):
        store.get("job_missing")
    with pytest.raises(JobNotFound):
        store.cancel("job_missing")


def test_late_subscriber_gets_every_delta_in_order(store):
    job = new_job(stream=True)
    store.create(job, "q")
    store.start(job)
    pieces = [f"p{i} " for i in range(50)]
    for i, piece in enumerate(pieces[:30]):
        store.append_delta(job.id, text_chunk(piece), first=i == 0)

    received: list[str] = []
    ended: list[ChatResult] = []

    def consume() -> None:
        for event in store.events(job.id, timeout=5):
            if isinstance(event, DeltaEvent):
                received.append(event.text)
            elif isinstance(event, EndEvent):
                ended.append(event.result)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for piece in pieces[30:]:
        store.append_delta(job.id, json.dumps(text_chunk(piece)))  # as the provider sent it
    store.finish(done(job, "".join(pieces)))
    consumer.join(5)
    assert received == pieces
    assert ended[0].content == "".join(pieces)
    assert [c["choices"][0]["delta"]["content"] for c in store.published_chunks(job.id)] == pieces


def test_waiting_too_long_raises_but_leaves_the_job(store):
    job = new_job()
    store.create(job, "q")
    with pytest.raises(JobTimeout):
        store.wait(job.id, timeout=0.2)
    assert store.get(job.id).status is JobStatus.queued


def test_a_job_id_is_created_once(store):
    job = new_job()
    assert store.create(job, "q")
    store.start(job)
    assert not store.create(job, "q")  # a second submit changes nothing
    assert store.get(job.id).status is JobStatus.in_progress


def failed(job: ChatJob) -> ChatResult:
    error = JobError(type="api_error", code="provider_unavailable", message="down")
    return ChatResult(job_id=job.id, status=JobStatus.failed, error=error, attempts=1)


def test_a_failed_job_is_filed_as_a_dead_letter_with_its_reason(store):
    letters = DeadLetters(store.redis, result_ttl_s=60)
    job = new_job()
    store.create(job, "q")
    store.start(job)
    assert store.finish(failed(job), dead_letter=job)
    assert not store.finish(failed(job), dead_letter=job)  # filed once
    [letter] = letters.list()
    assert letter.job_id == job.id and letter.error.message == "down"
    assert letter.job == job and letters.count() == 1


def test_done_and_cancelled_jobs_are_not_dead_letters(store):
    letters = DeadLetters(store.redis, result_ttl_s=60)
    for end in (done, lambda j: cancelled_result(j.id, "no", 0.0)):
        job = new_job()
        store.create(job, "q")
        store.finish(end(job), dead_letter=job)
    assert letters.count() == 0


def test_a_dead_letter_is_taken_back_once_even_when_asked_twice_at_once(store):
    letters = DeadLetters(store.redis, result_ttl_s=60)
    job = new_job()
    store.create(job, "q")
    store.start(job)
    store.finish(failed(job), dead_letter=job)
    barrier = threading.Barrier(2)
    taken: list[ChatJob | None] = []

    def take() -> None:
        barrier.wait()
        taken.append(letters.take(job.id))

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(t is None for t in taken) == [False, True]
    record = store.get(job.id)
    assert record.status is JobStatus.queued and record.result is None
    assert store.redis.xlen(f"chatq:events:{job.id}") == 0
    assert letters.count() == 0


def test_dead_letters_list_newest_first(redis_client):
    now = [100.0]
    store = JobStore(redis_client, result_ttl_s=60, events_ttl_s=60, clock=lambda: now[0])
    jobs = [new_job() for _ in range(3)]
    for job in jobs:
        now[0] += 1
        store.create(job, "q")
        store.finish(failed(job), dead_letter=job)
    letters = DeadLetters(redis_client, result_ttl_s=60)
    assert [d.job_id for d in letters.list()] == [j.id for j in reversed(jobs)]
    assert [d.job_id for d in letters.list(limit=1, offset=1)] == [jobs[1].id]


def test_the_stores_serve_more_callers_at_once_than_redis_pys_default_pool(redis_server):
    """redis-py caps a pool at 100 connections and raises past it; a worker with hundreds of
    threads, or a gateway with hundreds of open streams, needs one each."""
    settings = Settings(_env_file=None, redis_url=redis_server)
    callers = 150
    store = JobStore.from_settings(settings)
    errors: list[Exception] = []

    def wait_briefly() -> None:
        try:
            store.redis.blpop(["chatq:test:nothing"], timeout=1)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait_briefly) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    async def wait_all() -> None:
        async_store = AsyncJobStore.from_settings(settings)
        await asyncio.gather(
            *(async_store.redis.blpop(["chatq:test:nothing"], timeout=1) for _ in range(callers))
        )
        await async_store.redis.aclose()

    asyncio.run(wait_all())
