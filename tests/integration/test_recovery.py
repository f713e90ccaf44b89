"""Jobs whose worker died, jobs put aside until their slot, and jobs whose queue message was
lost are sent again, and only those (real Redis, no workers)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from chatq.producers.client import ChatqClient
from chatq.shared import broker, keys
from chatq.shared.jobs import ChatJob, ChatResult, JobError, JobStatus
from chatq.shared.settings import SchedulerPolicy, Settings
from chatq.shared.store import Claimed, JobStore
from chatq.workers import recovery
from chatq.workers.recovery import LostJobSweeper
from redis import Redis

CHECK_AFTER_S = 5.0
QUEUE = "chatq.interactive"


@pytest.fixture()
def client(redis_server: str, redis_client: Redis) -> Iterator[ChatqClient]:
    settings = Settings(
        _env_file=None,
        redis_url=redis_server,
        lost_job_check_s=CHECK_AFTER_S,
        scheduler=SchedulerPolicy(mode="fifo"),  # jobs go straight to their queue's list
    )
    with ChatqClient(settings) as chatq:
        yield chatq


def sweep_at(client: ChatqClient, now: float) -> recovery.Sweep:
    sweeper = LostJobSweeper(client.store.redis, check_after_s=CHECK_AFTER_S, clock=lambda: now)
    return sweeper.sweep()


def task_ids(redis: Redis, queue: str = QUEUE) -> list[str]:
    return [json.loads(item)["headers"]["id"] for item in redis.lrange(queue, 0, -1)]


def test_a_job_is_pending_with_its_payload_until_it_ends(client: ChatqClient):
    redis = client.store.redis
    before = time.time()
    job_id = client.submit("hello", max_tokens=4)
    check_at = redis.zscore(keys.PENDING, job_id)
    # whole seconds, rounded up (chatq.shared.job_state.check_time)
    assert (
        check_at is not None
        and before + CHECK_AFTER_S <= check_at <= time.time() + CHECK_AFTER_S + 1
    )
    assert json.loads(redis.hget(keys.job_key(job_id), "payload"))["id"] == job_id
    client.cancel(job_id)
    assert redis.zscore(keys.PENDING, job_id) is None
    assert redis.hget(keys.job_key(job_id), "payload") == ""  # emptied as the job ended


def test_a_message_taken_off_its_queue_and_lost_is_sent_again(client: ChatqClient):
    redis = client.store.redis
    job_id = client.submit("hello", max_tokens=4)
    redis.rpop(QUEUE)  # a worker took it and died before claiming it
    now = time.time() + CHECK_AFTER_S + 1
    report = sweep_at(client, now)
    assert (report.due, report.resent, report.waiting) == (1, 1, 0)
    assert task_ids(redis) == [job_id]
    assert redis.zscore(keys.PENDING, job_id) == pytest.approx(now + CHECK_AFTER_S)
    assert sweep_at(client, now + 1).due == 0


def test_a_message_in_its_queue_is_left_alone(client: ChatqClient):
    redis = client.store.redis
    job_ids = [client.submit(f"job {i}", max_tokens=4) for i in range(2)]
    report = sweep_at(client, time.time() + CHECK_AFTER_S + 1)
    assert (report.due, report.waiting, report.resent) == (2, 2, 0)
    assert sorted(task_ids(redis)) == sorted(job_ids)


def test_messages_deep_in_a_long_queue_are_found(client: ChatqClient, monkeypatch):
    monkeypatch.setattr(broker, "SCAN_CHUNK", 4)
    job_ids = [client.submit(f"job {i}", max_tokens=4) for i in range(11)]
    client.store.redis.lrem(QUEUE, 1, client.store.redis.lindex(QUEUE, 5))
    report = sweep_at(client, time.time() + CHECK_AFTER_S + 1)
    assert (report.waiting, report.resent) == (10, 1)
    assert sorted(task_ids(client.store.redis)) == sorted(job_ids)


def claim(client: ChatqClient, job_id: str, *, lease_s: float = 30) -> float:
    """Claims the job as a worker would; when its claim lapses unless renewed."""
    job = client.store.redis.hget(keys.job_key(job_id), "payload")
    client.store.start(ChatJob.model_validate_json(job), lease_s=lease_s)
    return float(client.store.redis.hget(keys.job_key(job_id), "lease_until"))


def test_a_claimed_job_is_checked_when_its_claim_would_lapse(client: ChatqClient):
    redis = client.store.redis
    job_id = client.submit("hello", max_tokens=4)
    check_at = redis.zscore(keys.PENDING, job_id)
    lease_until = claim(client, job_id, lease_s=CHECK_AFTER_S * 2)
    assert redis.zscore(keys.PENDING, job_id) == check_at  # the claim costs the set nothing...
    report = sweep_at(client, check_at + 0.1)  # ...the sweep finds it alive, checks it later
    assert (report.due, report.running, report.reclaimed) == (1, 1, 0)
    assert redis.zscore(keys.PENDING, job_id) == pytest.approx(lease_until)
    client.store.renew_leases([job_id], lease_s=60)  # its worker is alive: checked later
    renewed = float(redis.hget(keys.job_key(job_id), "lease_until"))
    assert renewed > lease_until and redis.zscore(keys.PENDING, job_id) == pytest.approx(renewed)
    report = sweep_at(client, lease_until + 1)
    assert (report.due, report.running, report.reclaimed) == (0, 0, 0)


def test_a_job_whose_worker_died_is_sent_again_as_soon_as_its_claim_lapses(client: ChatqClient):
    redis = client.store.redis
    job_id = client.submit("hello", max_tokens=4)
    redis.rpop(QUEUE)  # held by a worker that is about to die
    lease_until = claim(client, job_id)
    early = sweep_at(client, lease_until - 1)  # its claim is still alive: checked at its end
    assert (early.due, early.running, early.reclaimed) == (1, 1, 0)
    report = sweep_at(client, lease_until + 1)  # checks fall on whole seconds, rounded up
    assert (report.due, report.reclaimed, report.waiting) == (1, 1, 0)
    assert task_ids(redis) == [job_id]  # not left for kombu's visibility timeout
    again = ChatJob.model_validate_json(redis.hget(keys.job_key(job_id), "payload"))
    later = JobStore(redis, result_ttl_s=60, events_ttl_s=60, clock=lambda: lease_until + 1)
    assert later.start(again) == Claimed(2)  # its claim lapsed: the job runs again


def test_ended_and_expired_jobs_leave_the_pending_set(client: ChatqClient):
    redis = client.store.redis
    ended = client.submit("one", max_tokens=4)
    expired = client.submit("two", max_tokens=4)
    redis.hset(keys.job_key(ended), "status", "done")  # ended without its finishing step
    redis.delete(keys.job_key(expired))
    report = sweep_at(client, time.time() + CHECK_AFTER_S + 1)
    assert (report.due, report.ended, report.resent) == (2, 2, 0)
    assert redis.zcard(keys.PENDING) == 0


def release_at(client: ChatqClient, now: float) -> int:
    sweeper = LostJobSweeper(client.store.redis, check_after_s=CHECK_AFTER_S, clock=lambda: now)
    return sweeper.release_deferred()


def test_a_deferred_job_waits_in_redis_and_is_sent_again_when_due(client: ChatqClient):
    redis = client.store.redis
    job_id = client.submit("hello", max_tokens=4)
    redis.delete(QUEUE)  # its worker took the message, deferred it, acknowledged it
    before = time.time()
    assert client.store.defer(job_id, 120)
    assert redis.zscore(keys.PENDING, job_id) >= before + 120 + CHECK_AFTER_S
    assert redis.hget(keys.job_key(job_id), "deferrals") == "1"
    assert release_at(client, before + 60) == 0
    assert release_at(client, before + 121) == 1
    assert task_ids(redis) == [job_id] and redis.zcard(keys.DEFERRED) == 0
    assert release_at(client, before + 122) == 0  # sent once


def test_a_deferred_job_cancelled_meanwhile_is_not_sent(client: ChatqClient):
    redis = client.store.redis
    job_id = client.submit("hello", max_tokens=4)
    redis.delete(QUEUE)
    client.store.defer(job_id, 1)
    client.cancel(job_id)
    assert release_at(client, time.time() + 5) == 0 and task_ids(redis) == []


def test_a_job_with_no_payload_to_send_again_is_not_deferred(client: ChatqClient):
    job = ChatJob.model_validate(
        {"request": {"model": "m", "messages": [{"role": "user", "content": "x"}]}}
    )
    client.store.start(job)  # sent straight to Celery: its record has no payload
    assert not client.store.defer(job.id, 10)
    assert client.store.redis.zcard(keys.DEFERRED) == 0


def test_a_retried_dead_letter_is_pending_again(client: ChatqClient):
    redis = client.store.redis
    job_id = client.submit("hello", max_tokens=4)
    job = ChatJob.model_validate_json(redis.hget(keys.job_key(job_id), "payload"))
    failed = ChatResult(
        job_id=job_id,
        status=JobStatus.failed,
        error=JobError(type="server_error", code="provider_error", message="down"),
    )
    client.store.finish(failed, dead_letter=job)
    assert redis.zscore(keys.PENDING, job_id) is None
    assert client.retry_dead_letter(job_id)
    assert redis.zscore(keys.PENDING, job_id) is not None
    assert redis.hget(keys.job_key(job_id), "payload") is not None
