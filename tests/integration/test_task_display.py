"""What Flower and task events show of a chat task: ids and sizes, never user text; and a
job cancelled before a worker ran it, as revoked."""

from __future__ import annotations

import base64
import json
import time

from chatq.producers.client import ChatqClient
from chatq.shared.jobs import ChatJob
from chatq.shared.settings import SchedulerPolicy, Settings
from chatq.shared.store import JobStore
from chatq.workers.lifecycle import JobLifecycle
from redis import Redis

SECRET_TEXT = "my password is hunter2 and my card 4111 1111 1111 1111"


def queue_only(redis_server: str, db: int) -> tuple[Redis, Settings]:
    """A database no worker reads, emptied, and settings that send jobs straight to its
    queue (no scheduler): their messages wait there."""
    url = f"{redis_server.rsplit('/', 1)[0]}/{db}"
    redis = Redis.from_url(url, decode_responses=True)
    redis.flushdb()
    settings = Settings(
        _env_file=None,
        redis_url=url,
        provider_base_url="http://127.0.0.1:9/v1",
        scheduler=SchedulerPolicy(mode="fifo"),
    )
    return redis, settings


def test_a_queued_chat_task_shows_no_message_text(redis_server):
    redis, settings = queue_only(redis_server, 15)
    with ChatqClient(settings) as client:
        job_id = client.submit(SECRET_TEXT, max_tokens=5)
    [raw] = redis.lrange(settings.interactive_queue, 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["argsrepr"] == f"(job {job_id}, model sim-mini, 1 messages, stream=False)"
    assert "hunter2" not in headers["argsrepr"] and "hunter2" not in headers["kwargsrepr"]
    assert headers["task"] == "chatq.chat"


def test_a_job_cancelled_in_the_queue_is_shown_revoked_by_the_worker_that_skips_it(redis_server):
    redis, settings = queue_only(redis_server, 14)
    with ChatqClient(settings) as client:
        job_id = client.submit(SECRET_TEXT, max_tokens=5)
        assert client.cancel(job_id)
    [raw] = redis.lrange(settings.interactive_queue, 0, -1)  # its message, still queued
    args, _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
    job = ChatJob.model_validate(args[0])
    events = redis.pubsub()
    events.psubscribe("*task.revoked")
    events.get_message(timeout=1)  # the subscription's confirmation
    store = JobStore(redis, result_ttl_s=60, events_ttl_s=60)
    lifecycle = JobLifecycle(
        store, worker_name="worker9@host", lease_s=30, clock=time.time, task_events_db=14
    )
    assert lifecycle.claim(job) is None  # already ended: skipped
    message = events.get_message(timeout=5)
    event = json.loads(json.loads(message["data"])["body"])
    assert (event["type"], event["uuid"], event["hostname"]) == (
        "task-revoked",
        job_id,
        "worker9@host",
    )
    assert event["args"] == f"(job {job_id}, model sim-mini, 1 messages, stream=False)"
    assert "job_cancelled" in event["exception"]
