"""chatq across separate hosts (tests.support.lab): Redis, the simulator, the gateway and two
workers each on a network namespace of its own, joined by a switch, and the test on a sixth, the
client. Every packet takes 20 ms from any host to any other."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from chatq.producers.aio import AsyncChatqClient
from chatq.producers.client import ChatqClient
from chatq.shared import keys
from chatq.shared.jobs import ChatResult, JobStatus
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import Settings
from chatq.shared.store import JobRecord

from chatq.processes import Part, free_port, stop
from chatq.stack import metrics_env, start_gateway, start_redis, start_simulator, start_workers
from tests.support.lab import Lab
from tests.support.stacks import PROVIDER_NICENESS, TEST_ENV, stack_fixture
from tests.support.waiting import eventually

HOSTS = ("redis", "sim", "gateway", "w1", "w2", "client")
WORKER_HOSTS = ("w1", "w2")
DELAY_MS = 20

WHY_NOT = Lab.unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no lab here: {WHY_NOT}")


@dataclass
class Cluster:
    lab: Lab
    settings: Settings
    sim_url: str
    gateway_url: str
    parts: list[Part]

    def sim_stats(self) -> dict:
        return requests.get(self.sim_url.removesuffix("/v1") + "/sim/stats", timeout=10).json()

    def stop(self) -> None:
        stop(self.parts)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(HOSTS, delay_ms=DELAY_MS) as built, built.entered("client"):
        yield built


def start_cluster(lab: Lab, *, sim_args: list[str], env: dict[str, str] | None = None) -> Cluster:
    """The stack of ``chatq up``, one part per host, as a deployment across hosts runs it."""
    parts: list[Part] = []
    data = Path(tempfile.mkdtemp(prefix="chatq-lab-"))
    try:
        with lab.on("redis"):
            # a port of its own per cluster: clients of this process keep pools by address
            address = lab["redis"].address
            redis = start_redis(free_port(), data / "redis", persist=False, host=address)
        parts.append(redis)
        sync_client(redis.address).flushall()
        with lab.on("sim"):
            sim = start_simulator(
                free_port(),
                ["--log-size", "100000", *sim_args],
                host=lab["sim"].address,
                niceness=PROVIDER_NICENESS,
            )
        parts.append(sim)
        child_env = {
            **TEST_ENV,
            "CHATQ_REDIS_URL": redis.address,
            "CHATQ_PROVIDER_BASE_URL": sim.address,
            "CHATQ_FILES_DIR": str(data / "files"),
            **metrics_env(data / "metrics"),
            **(env or {}),
        }
        settings = Settings(_env_file=None, redis_url=redis.address, provider_base_url=sim.address)
        for host in WORKER_HOSTS:
            with lab.on(host):
                parts += start_workers(1, settings, child_env, host=host)
        with lab.on("gateway"):  # open, on a network only the lab's hosts are on
            gateway_env = {**child_env, "CHATQ_ALLOW_OPEN_GATEWAY": "true"}
            gateway = start_gateway(lab["gateway"].address, free_port(), gateway_env)
        parts.append(gateway)
        return Cluster(lab, settings, sim.address, gateway.address, parts)
    except BaseException:
        stop(parts)
        raise


def in_lab(lab: Lab) -> dict[str, Lab]:
    return {"lab": lab}


cluster = stack_fixture(start=start_cluster, from_fixtures=in_lab, sim_args=["--ttft-ms", "20"])
limited = stack_fixture(
    scope="function",
    start=start_cluster,
    from_fixtures=in_lab,
    sim_args=["--rpm", "600", "--quantum-s", "1"],
    env={"CHATQ_PROVIDER_RPM": "600"},
)


def test_links_hold_every_packet_20_ms(lab):
    address = (lab["redis"].address, 9)  # nothing listens: the refusal is one round trip
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()
    round_trip_ms = (time.monotonic() - started) * 1000
    print(f"lab round trip: {round_trip_ms:.1f} ms")
    assert 2 * DELAY_MS <= round_trip_ms < 2 * DELAY_MS + 30


def test_500_jobs_cross_the_network_each_run_once_on_both_worker_hosts(cluster):
    async def submit_all() -> list[str]:
        async with contextlib.aclosing(AsyncChatqClient(cluster.settings)) as client:
            return await asyncio.gather(
                *(client.submit(f"Across hosts {i}", max_tokens=5) for i in range(500))
            )

    calls_before = cluster.sim_stats()["requests"]
    ended = outcomes(cluster.settings, asyncio.run(submit_all()))
    assert [o.result.status for o in ended] == [JobStatus.done] * 500
    calls = cluster.sim_stats()["requests"] - calls_before
    assert calls == 500  # one provider call each: none ran twice
    assert {o.ends for o in ended} == {1}
    assert {o.record.worker.split("@")[1] for o in ended} == set(WORKER_HOSTS)


def test_streams_cross_the_network_in_order(cluster):
    async def stream_one(client: AsyncChatqClient, n: int) -> None:
        job_id = await client.submit(f"Stream across hosts {n}", max_tokens=40, stream=True)
        streamed = "".join([text async for text in client.stream(job_id)])
        assert streamed == (await client.result(job_id)).content != ""

    async def stream_all() -> None:
        client = AsyncChatqClient(cluster.settings)
        try:
            await asyncio.gather(*(stream_one(client, n) for n in range(20)))
        finally:
            await client.aclose()

    asyncio.run(stream_all())
    body = {
        "model": "sim-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "through the gateway host"}],
    }
    reply = requests.post(f"{cluster.gateway_url}/chat/completions", json=body, timeout=30)
    assert reply.status_code == 200 and reply.text.rstrip().endswith("data: [DONE]")


def test_two_worker_hosts_keep_600_rpm_with_no_429(limited):
    with ChatqClient(limited.settings) as client:
        job_ids = [client.submit(f"Limited across hosts {i}", max_tokens=5) for i in range(150)]
        results = [client.result(job_id, timeout=180) for job_id in job_ids]
    assert [r.status for r in results] == [JobStatus.done] * 150
    stats = limited.sim_stats()
    assert stats["rate_limited"] == 0, stats
    assert stats["requests"] == 150


CUT_S = 20.0
REJOIN_BOUND_S = 60.0  # TCP's retransmissions back off through the cut: the first comes late
TAKEOVER_BOUND_S = 30.0  # a cut-off host's claims lapse (10 s here), then a sweep sends them on


leased = stack_fixture(
    scope="function",
    start=start_cluster,
    from_fixtures=in_lab,
    sim_args=["--ttft-ms", "500"],
    env={"CHATQ_JOB_LEASE_S": "10", "CHATQ_LOST_JOB_CHECK_S": "10"},
)


def test_a_worker_host_cut_off_for_20_s_loses_nothing_and_rejoins(leased):
    lab = leased.lab
    with ChatqClient(leased.settings) as client:
        load = SteadyLoad(client)
        submitter = threading.Thread(target=load.run, args=(0.05,), daemon=True)
        submitter.start()
        time.sleep(5)  # steady load before the cut
        cut_at = time.time()
        lab.cut("w1")
        try:
            time.sleep(CUT_S)  # the partition lasts this long
        finally:
            lab.join("w1")
        joined_at = time.time()
        rejoined_at = first_job_on("w1", load, leased.settings, since=joined_at)
        time.sleep(5)  # steady load after the heal
        load.stopping.set()
        submitter.join(timeout=30)
    ended = outcomes(leased.settings, load.accepted)
    results = {o.record.job_id: o.result for o in ended}
    records = {o.record.job_id: o.record for o in ended}
    ends = {o.record.job_id: o.ends for o in ended}
    taken_over = [r for r in records.values() if r.attempts > 1]
    after_join = [r for r in records.values() if (r.started_at or 0) > rejoined_at]
    calls = leased.sim_stats()["requests"]
    print(
        f"cut w1 for {CUT_S:g} s under load: {len(results)} jobs, {len(taken_over)} taken over "
        f"from it, {calls - len(results)} provider calls repeated (a call in flight as its "
        f"claim lapsed); w1 took a job {rejoined_at - joined_at:.1f} s after the join, and "
        f"{sum(r.worker.endswith('@w1') for r in after_join)} of the {len(after_join)} after"
    )
    assert [r.status for r in results.values()].count(JobStatus.done) == len(results)
    assert set(ends.values()) == {1}, "every job ended exactly once"
    assert taken_over, "the cut-off host's jobs were finished elsewhere"
    early = [r for r in taken_over if r.finished_at < joined_at]
    assert all(r.worker.endswith("@w2") for r in early)
    assert all(r.finished_at - cut_at <= TAKEOVER_BOUND_S for r in early)


def test_a_gateway_that_loses_redis_answers_503_and_recovers(cluster):
    lab = cluster.lab
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "are you there?"}]}
    url = f"{cluster.gateway_url}/chat/completions"
    assert requests.post(url, json=body, timeout=30).status_code == 200
    lab.isolate("gateway", "redis")
    try:
        started = time.monotonic()
        refused = requests.post(url, json=body, timeout=60)
        refused_in = time.monotonic() - started
    finally:
        lab.reconnect("gateway", "redis")
    assert refused.status_code == 503, refused.text
    assert refused.headers.get("Retry-After")
    assert refused.json()["error"]["code"] == "queue_unavailable"
    assert refused_in < 5  # CHATQ_SUBMIT_TIMEOUT_S (3 s), not the socket timeout (10 s)
    started = time.monotonic()
    eventually(
        lambda: requests.post(url, json=body, timeout=30).status_code == 200 or None,
        timeout=30,
        every=0.2,
        what="the gateway not recovered",
    )
    print(
        f"gateway without Redis: 503 in {refused_in:.2f} s, 200 again "
        f"{time.monotonic() - started:.2f} s after the route came back"
    )


@dataclass(frozen=True)
class Outcome:
    result: ChatResult
    record: JobRecord
    ends: int  # end events in the job's stream


def outcomes(settings: Settings, job_ids: list[str]) -> list[Outcome]:
    """How each job ended, read side by side: one at a time, each would wait a round trip."""

    async def read_all() -> tuple[list[ChatResult], list[JobRecord]]:
        async with contextlib.aclosing(AsyncChatqClient(settings)) as client:
            results = await asyncio.gather(*(client.result(j, timeout=180) for j in job_ids))
            return results, await asyncio.gather(*(client.status(j) for j in job_ids))

    results, records = asyncio.run(read_all())
    streams = sync_client(settings.effective_redis_url).pipeline(transaction=False)
    for job_id in job_ids:
        streams.xrange(keys.events_key(job_id))
    ends = [sum(e["type"] == "end" for _, e in stream) for stream in streams.execute()]
    return [Outcome(*outcome) for outcome in zip(results, records, ends, strict=True)]


def first_job_on(host: str, load: SteadyLoad, settings: Settings, *, since: float) -> float:
    """When a job submitted after ``since`` first started on worker host ``host``."""
    with ChatqClient(settings) as client:

        def started_there() -> float | None:
            for job_id in load.accepted[-30:]:
                record = client.status(job_id)
                if (record.worker or "").endswith(f"@{host}") and (record.started_at or 0) > since:
                    return record.started_at
            return None

        return eventually(started_there, timeout=REJOIN_BOUND_S, every=0.5)


@dataclass
class SteadyLoad:
    """Jobs submitted at a steady rate from a thread."""

    client: ChatqClient
    accepted: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self, every_s: float) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            self.accepted.append(self.client.submit(f"Steady question {n}", max_tokens=4))
            time.sleep(every_s)  # the load's pace
