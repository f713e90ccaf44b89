"""Identical requests' shared answer on a real Redis: who leads, who follows, and the cached
answer kept in the leader's record."""

from __future__ import annotations

import pytest
from chatq.shared import keys
from chatq.shared.completion import text_completion
from chatq.shared.jobs import ChatJob, ChatRequest, ChatResult, JobError, JobStatus
from chatq.shared.store import JobStore
from chatq.workers.coalesce import Coalescer, request_key

CACHE_TTL_S = 600


@pytest.fixture()
def store(redis_client) -> JobStore:
    return JobStore(redis_client, result_ttl_s=60, events_ttl_s=60)


@pytest.fixture()
def coalescer(redis_client) -> Coalescer:
    return Coalescer(redis_client, cache_ttl_s=CACHE_TTL_S, lease_s=30, lru_size=0)


def same_job() -> ChatJob:
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "same question"}])
    return ChatJob(request=request)


def running(store: JobStore, job: ChatJob, *, lease_s: float = 30) -> ChatJob:
    store.create(job, "q")
    store.start(job, lease_s=lease_s)
    return job


def end(store: JobStore, job: ChatJob, key: str, result: ChatResult, cache_ttl_s: int) -> None:
    assert store.finish(result, share_key=key, cache_ttl_s=cache_ttl_s)


def done(job: ChatJob) -> ChatResult:
    return ChatResult(job_id=job.id, status=JobStatus.done, completion=text_completion("shared"))


def failed(job: ChatJob) -> ChatResult:
    error = JobError(type="server_error", message="provider down")
    return ChatResult(job_id=job.id, status=JobStatus.failed, error=error)


def test_the_first_leads_the_next_follows_then_the_record_is_the_cache(store, coalescer):
    leader = running(store, same_job())
    key = request_key(leader.request)
    assert coalescer.join(key, leader.id, use_cache=True).kind == "lead"
    follower = same_job()
    decision = coalescer.join(key, follower.id, use_cache=True)
    assert (decision.kind, decision.leader) == ("follow", leader.id)
    end(store, leader, key, done(leader), CACHE_TTL_S)
    later = coalescer.join(key, same_job().id, use_cache=True)
    assert later.kind == "cached" and later.cached.content == "shared"
    assert store.redis.get(keys.answer_key(key)) == leader.id
    assert store.redis.ttl(keys.job_key(leader.id)) > 60  # kept as long as the cache


def test_a_failed_leader_is_taken_over(store, coalescer):
    leader = running(store, same_job())
    key = request_key(leader.request)
    coalescer.join(key, leader.id, use_cache=True)
    end(store, leader, key, failed(leader), CACHE_TTL_S)
    assert store.redis.exists(keys.answer_key(key)) == 0  # freed as it ended
    store.redis.set(keys.answer_key(key), leader.id)  # as if another process had lagged
    successor = same_job()
    assert coalescer.join(key, successor.id, use_cache=True).kind == "lead"
    assert store.redis.get(keys.answer_key(key)) == successor.id


def test_a_leader_whose_claim_lapsed_is_taken_over(store, coalescer):
    leader = running(store, same_job(), lease_s=-1)
    key = request_key(leader.request)
    coalescer.join(key, leader.id, use_cache=True)
    successor = same_job()
    assert coalescer.join(key, successor.id, use_cache=True).kind == "lead"
    assert store.redis.get(keys.answer_key(key)) == successor.id


def test_a_job_skipping_the_cache_calls_on_its_own_and_leaves_the_answer(store, coalescer):
    leader = running(store, same_job())
    key = request_key(leader.request)
    coalescer.join(key, leader.id, use_cache=True)
    end(store, leader, key, done(leader), CACHE_TTL_S)
    skipper = running(store, same_job())
    assert coalescer.join(key, skipper.id, use_cache=False).kind == "lead"
    end(store, skipper, key, done(skipper), 0)
    assert store.redis.get(keys.answer_key(key)) == leader.id


def test_an_answer_not_cached_frees_the_key(store, coalescer):
    leader = running(store, same_job())
    key = request_key(leader.request)
    coalescer.join(key, leader.id, use_cache=False)
    assert 0 < store.redis.pttl(keys.answer_key(key)) <= 30_000  # a lead lasts the lease
    end(store, leader, key, done(leader), 0)
    assert store.redis.exists(keys.answer_key(key)) == 0


def test_free_leaves_a_key_another_job_leads(store, coalescer):
    leader = running(store, same_job())
    key = request_key(leader.request)
    store.redis.set(keys.answer_key(key), "someone-else")
    coalescer.free(key, leader.id)
    assert store.redis.get(keys.answer_key(key)) == "someone-else"
    store.redis.set(keys.answer_key(key), leader.id)
    coalescer.free(key, leader.id)
    assert store.redis.exists(keys.answer_key(key)) == 0
