"""Job ends published to the process awaiting them, against a real Redis: none missed, and
other readers of such a job still see its end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from chatq.shared.async_store import AsyncJobStore
from chatq.shared.completion import text_completion
from chatq.shared.end_notices import EndNotices
from chatq.shared.errors import JobTimeout
from chatq.shared.jobs import ChatJob, ChatRequest, ChatResult, JobStatus
from chatq.shared.protocol import EndEvent
from chatq.shared.store import JobStore

from tests.support.waiting import eventually, eventually_async


@pytest.fixture()
def store(redis_client) -> JobStore:
    return JobStore(redis_client, result_ttl_s=60, events_ttl_s=60)


def new_job() -> ChatJob:
    return ChatJob(request=ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]))


def done(job: ChatJob, content: str = "ok") -> ChatResult:
    return ChatResult(job_id=job.id, status=JobStatus.done, completion=text_completion(content))


@contextlib.asynccontextmanager
async def awaiting(url: str) -> AsyncIterator[tuple[AsyncJobStore, EndNotices]]:
    """An asyncio store and the end notices of its process, closed afterwards."""
    store = AsyncJobStore(AsyncJobStore.connect(url), result_ttl_s=60, events_ttl_s=60)
    ends = EndNotices(store, url)
    try:
        yield store, ends
    finally:
        await ends.aclose()
        await store.aclose()


async def subscribed(redis, channel: str) -> None:
    async def listeners() -> int | None:
        return (await redis.pubsub_numsub(channel))[0][1] or None

    await eventually_async(listeners, timeout=2, every=0.01, what=f"nobody on {channel}")


async def awaited_job(jobs, ends) -> ChatJob:
    """A job just created to end on ``ends``' channel, once the channel is listened to."""
    job = new_job()
    ends.expect(job.id)
    await jobs.create(job, "q", reply_to=ends.channel)
    await subscribed(jobs.redis, ends.channel)
    return job


def test_an_awaited_job_ends_on_its_reply_channel_not_its_stream(store, redis_server):
    async def scenario() -> ChatResult:
        async with awaiting(redis_server) as (jobs, ends):
            job = await awaited_job(jobs, ends)
            store.start(job)
            assert store.finish(done(job, "pushed"))
            return await ends.wait(job.id, timeout=5)

    assert asyncio.run(scenario()).content == "pushed"
    assert store.redis.keys("chatq:events:*") == []


def test_a_stray_message_on_the_channel_stops_no_wait(store, redis_server):
    async def scenario() -> ChatResult:
        async with awaiting(redis_server) as (jobs, ends):
            job = await awaited_job(jobs, ends)
            store.redis.publish(ends.channel, "not a job's end")
            store.start(job)
            store.finish(done(job, "after the noise"))
            return await ends.wait(job.id, timeout=5)

    assert asyncio.run(scenario()).content == "after the noise"


def test_a_job_that_ended_before_the_subscription_is_caught_up(store, redis_server):
    async def scenario() -> ChatResult:
        async with awaiting(redis_server) as (jobs, ends):
            job = new_job()
            await jobs.create(job, "q", reply_to=ends.channel)
            store.start(job)
            store.finish(done(job, "early"))  # nobody listens yet: the notice is lost
            ends.expect(job.id)  # starts the listener, which reads the record once subscribed
            return await ends.wait(job.id, timeout=5)

    assert asyncio.run(scenario()).content == "early"


def test_ends_missed_while_the_connection_was_down_are_caught_up(store, redis_server):
    async def scenario() -> ChatResult:
        async with awaiting(redis_server) as (jobs, ends):
            job = await awaited_job(jobs, ends)
            store.redis.client_kill_filter(_type="pubsub")
            store.start(job)
            store.finish(done(job, "while away"))  # published to no one
            return await ends.wait(job.id, timeout=10)

    assert asyncio.run(scenario()).content == "while away"


def test_a_wait_that_times_out_reads_the_record_first(store, redis_server):
    async def scenario() -> None:
        async with awaiting(redis_server) as (jobs, ends):
            job = new_job()
            ends.expect(job.id)
            await jobs.create(job, "q", reply_to=ends.channel)
            with pytest.raises(JobTimeout):
                await ends.wait(job.id, timeout=0.3)
            assert not ends.expects(job.id)

    asyncio.run(scenario())


def test_another_reader_of_an_awaited_job_sees_its_end(store, redis_server):
    job = new_job()
    store.send_command(store.commands.create(job, "q", reply_to="chatq:replies:elsewhere"))
    store.start(job)
    with ThreadPoolExecutor(1) as pool:
        events = pool.submit(lambda: list(store.events(job.id, timeout=5)))
        eventually(lambda: store.redis.hget(f"chatq:job:{job.id}", "watched"))
        store.finish(done(job, "seen"))
        (end,) = events.result()
    assert isinstance(end, EndEvent) and end.result.content == "seen"


def test_a_reader_arriving_after_the_end_gets_it_from_the_record(store):
    job = new_job()
    store.send_command(store.commands.create(job, "q", reply_to="chatq:replies:elsewhere"))
    store.start(job)
    store.finish(done(job, "late"))
    assert store.redis.exists(f"chatq:events:{job.id}") == 0
    (end,) = list(store.events(job.id, timeout=1))
    assert isinstance(end, EndEvent) and end.result.content == "late"
    assert store.wait(job.id, timeout=1).content == "late"
