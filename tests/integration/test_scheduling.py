"""The fair scheduler's scripts on a real Redis: where jobs wait and which one goes next.

Jobs are submitted with the SDK; a ``Dispatcher`` releases them as a worker process's would;
"starting" a released job is what a worker's claim does to its record (status ``running``).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from chatq.producers.client import ChatqClient
from chatq.producers.metrics_route import SchedulerWaits
from chatq.shared import keys
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.job_state.waiting import SchedulerView
from chatq.shared.jobs import ChatJob
from chatq.shared.settings import Settings
from chatq.shared.store import JobStore
from chatq.workers.dispatcher import Dispatcher
from redis import Redis

MODEL = "m"
INTERACTIVE, BULK = "chatq.interactive", "chatq.bulk"


@pytest.fixture()
def settings(redis_client: Redis) -> Settings:
    url = redis_client.connection_pool.connection_kwargs
    return Settings(
        _env_file=None,
        redis_url=f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}",
        provider_base_url="http://127.0.0.1:9/v1",
        models=[MODEL],
        provider_rpm=600,
    )


@pytest.fixture()
def client(settings: Settings) -> Iterator[ChatqClient]:
    with ChatqClient(settings) as sdk:
        yield sdk


@pytest.fixture()
def dispatcher(settings: Settings, redis_client: Redis) -> Dispatcher:
    registry = DeploymentRegistry(settings)
    return Dispatcher(redis_client, registry, settings.scheduler, lost_job_check_s=30)


def submit(client: ChatqClient, tenant: str, count: int, **params) -> list[str]:
    return [
        client.submit("hello there", model=MODEL, tenant=tenant, max_tokens=10, **params)
        for _ in range(count)
    ]


def released(redis: Redis, queue: str = INTERACTIVE) -> list[str]:
    """The job ids on a Celery queue, in the order workers take them."""
    messages = reversed(redis.lrange(queue, 0, -1))
    return [json.loads(m)["headers"]["id"] for m in messages]


def tenant_of(redis: Redis, job_id: str) -> str:
    return redis.hget(keys.job_key(job_id), "tenant")


def start(redis: Redis, job_ids: list[str]) -> None:
    """What a worker's claim does to the released jobs' records."""
    for job_id in job_ids:
        redis.hset(keys.job_key(job_id), "status", "running")


def release_in_turn(redis: Redis, dispatcher: Dispatcher, count: int, queue: str = INTERACTIVE):
    """Dispatches, starting what was released, until ``count`` jobs went out; their ids."""
    order: list[str] = []
    for _ in range(count * 2):
        dispatcher.dispatch_once()
        order = released(redis, queue)
        start(redis, order)
        if len(order) >= count:
            break
    return order[:count]


def test_a_light_tenant_goes_ahead_of_a_flood(client, dispatcher, redis_client):
    big = submit(client, "big", 20)
    small = submit(client, "small", 3)
    assert released(redis_client) == []  # no worker has said what the pool may take yet
    first = dispatcher.dispatch_once()[0]
    assert first.released == 3  # 600 rpm paced at 107.5 ms: three slots within 300 ms
    assert first.wait_s is not None and first.wait_s > 0
    order = release_in_turn(redis_client, dispatcher, 8)
    assert set(small) <= set(order[:6])
    assert [tenant_of(redis_client, j) for j in order[:6]] == ["big", "small"] * 3
    assert set(order[6:]) <= set(big)


def test_weights_share_releases_three_to_one(client, dispatcher, redis_client):
    redis_client.hset(keys.tenant_key("a"), "weight", "3")
    submit(client, "a", 40)
    submit(client, "b", 40)
    order = release_in_turn(redis_client, dispatcher, 24)
    counts = Counter(tenant_of(redis_client, j) for j in order)
    assert counts == {"a": 18, "b": 6}


def test_bulk_gets_its_floor_while_interactive_waits(client, dispatcher, redis_client):
    submit(client, "chat", 60)
    submit(client, "nightly", 30, priority="bulk")
    chat: list[str] = []
    bulk: list[str] = []
    while len(chat) + len(bulk) < 40:
        dispatcher.dispatch_once()
        chat, bulk = released(redis_client), released(redis_client, BULK)
        start(redis_client, chat + bulk)
    assert len(bulk) / (len(chat) + len(bulk)) == pytest.approx(0.1, abs=0.03)


def test_a_tenant_set_to_bulk_cannot_ride_the_interactive_band(client, dispatcher, redis_client):
    redis_client.hset(keys.tenant_key("batchy"), "band", "bulk")
    submit(client, "chat", 30)
    demoted = submit(client, "batchy", 5)  # asks for interactive
    order = release_in_turn(redis_client, dispatcher, 10)
    assert not set(demoted) & set(order[:9])  # bulk waits: one release in ten


def test_a_job_near_its_deadline_goes_first_in_its_band(client, dispatcher, redis_client):
    earlier = submit(client, "x", 10)
    urgent = submit(client, "x", 1, deadline_s=5)
    order = release_in_turn(redis_client, dispatcher, 3)
    assert order[0] == urgent[0]
    assert order[1:] == earlier[:2]


def test_a_cancelled_waiting_job_is_never_released(client, dispatcher, redis_client):
    jobs = submit(client, "x", 3)
    quota = keys.quota_tokens_key("x", time.time())
    reserved = int(redis_client.get(quota))  # each job's prompt and max_tokens
    client.cancel(jobs[0])
    dispatcher.dispatch_once()
    assert released(redis_client) == jobs[1:]
    assert redis_client.hlen(keys.SCHEDULER_ENTRIES) == 0
    assert int(redis_client.get(quota)) == reserved * 2 // 3  # its reservation went back


def test_with_room_and_nobody_waiting_a_job_goes_straight_to_its_queue(
    client, dispatcher, redis_client
):
    dispatcher.dispatch_once()  # the pool's limits are known from now on
    first = submit(client, "x", 1)
    assert released(redis_client) == first
    more = submit(client, "x", 10)
    assert released(redis_client) == first + more[:2]  # then the horizon is full
    assert redis_client.hlen(keys.SCHEDULER_ENTRIES) == 8


def test_a_parked_job_waits_again_in_its_place_and_its_charge_is_refunded(
    client, dispatcher, settings, redis_client
):
    jobs = submit(client, "x", 3)
    dispatcher.dispatch_once()
    tenants = f"{keys.SCHEDULER}{MODEL}:interactive:tenants"
    served = f"{keys.SCHEDULER}{MODEL}:interactive:served"
    charged = float(redis_client.hget(served, "x"))
    assert charged > 0
    message = redis_client.rpop(INTERACTIVE)
    job = ChatJob.model_validate(json.loads(base64.b64decode(json.loads(message)["body"]))[0][0])
    assert job.id == jobs[0]
    store = JobStore.from_settings(settings)
    assert store.set_aside(job, INTERACTIVE, 5.0) is True
    assert redis_client.zscore(tenants, "x") == pytest.approx(charged * 2 / 3)
    start(redis_client, released(redis_client))
    redis_client.delete(INTERACTIVE)
    dispatcher.dispatch_once()
    assert released(redis_client) == [jobs[0]]


def test_an_operator_sees_who_waits_how_long_and_the_shares(client, dispatcher, redis_client):
    submit(client, "big", 20)
    submit(client, "small", 2)
    submit(client, "night", 3, priority="bulk")
    time.sleep(0.05)  # the jobs have waited a measurable while: the view reports it
    dispatcher.dispatch_once()
    view = SchedulerView(redis_client)
    waits = {(w.band, w.tenant): w for w in view.waits()}
    assert set(waits) == {("interactive", "big"), ("interactive", "small"), ("bulk", "night")}
    assert waits["interactive", "big"].waiting == 20 - 2  # big and small took turns
    assert waits["interactive", "big"].oldest_wait_s >= 0.05
    assert view.shares().keys() == {"big", "small"}
    assert sum(view.shares().values()) == pytest.approx(1.0)
    families = {f.name: f for f in SchedulerWaits(redis_client, top=1).collect()}
    waiting = {
        s.labels["tenant"]: s.value for s in families["chatq_scheduler_waiting_jobs"].samples
    }
    assert waiting == {"big": 18, "other": 1, "night": 3}  # top 1 of each band, the rest 'other'


def test_jobs_of_a_model_no_deployment_serves_are_released_to_fail(
    settings, dispatcher, redis_client
):
    wider = settings.model_copy(update={"models": [MODEL, "ghost"]})
    with ChatqClient(wider) as other:
        job_id = other.submit("hello", model="ghost", tenant="x", max_tokens=10)
    assert released(redis_client) == []
    dispatcher.dispatch_once()  # its workers serve only MODEL
    assert released(redis_client) == [job_id]
