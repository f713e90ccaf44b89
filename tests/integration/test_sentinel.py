"""Redis behind Sentinel, all real redis-server processes: one master, two replicas, three
sentinels. The master is SIGKILLed under a steady load of jobs; Sentinel promotes a replica,
every client follows it by itself, jobs flow again, and every job accepted before or after
ends exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from chatq.producers.client import ChatqClient
from chatq.shared import keys
from chatq.shared.errors import ChatqError, QueueUnavailable
from chatq.shared.jobs import JobStatus
from chatq.shared.redis_clients import SentinelTarget, sync_client
from chatq.shared.settings import Settings

from chatq.processes import Part, free_port, kill, stop
from chatq.stack import start_redis, start_sentinel
from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

MASTER = "chatq"
RECOVERY_BOUND_S = 15.0  # from the master's death to jobs flowing again
SHORT_CHECKS = {"CHATQ_JOB_LEASE_S": "5", "CHATQ_LOST_JOB_CHECK_S": "5"}


@dataclass
class SentinelGroup:
    master: Part
    replicas: list[Part]
    sentinels: list[Part]
    url: str

    @property
    def parts(self) -> list[Part]:
        return [self.master, *self.replicas, *self.sentinels]


@pytest.fixture()
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    parts: list[Part] = []
    try:
        master_port = free_port()
        master = start_redis(master_port, tmp_path / "master", persist=False)
        parts.append(master)
        replicas = [
            start_redis(
                free_port(), tmp_path / f"replica{i}", persist=False, replica_of=master_port
            )
            for i in range(2)
        ]
        parts += replicas
        eventually(lambda: _replicas_online(master.address) == 2 or None, timeout=30)
        sentinels = [
            start_sentinel(
                free_port(), tmp_path / f"sentinel{i}", master=MASTER, master_port=master_port
            )
            for i in range(3)
        ]
        parts += sentinels
        eventually(lambda: all(_sentinel_ready(s) for s in sentinels) or None, timeout=30)
        addresses = tuple(("127.0.0.1", int(s.address.rsplit(":", 1)[1])) for s in sentinels)
        url = SentinelTarget(sentinels=addresses, master_name=MASTER).url()
        yield SentinelGroup(master, replicas, sentinels, url)
    finally:
        stop(parts)


def _replicas_online(url: str) -> int:
    info = sync_client(url).info("replication")
    return sum(1 for k, v in info.items() if k.startswith("slave") and v.get("state") == "online")


def _sentinel_ready(sentinel: Part) -> bool:
    state = sync_client(f"redis://{sentinel.address}").sentinel_master(MASTER)
    return state["num-slaves"] == 2 and state["num-other-sentinels"] == 2


def _first_after(load: Load, moment: float) -> float | None:
    """When the first job after ``moment`` was accepted, if one was."""
    return next((at for at, _ in load.accepted if at > moment), None)


def _chat(gateway: str) -> float | None:
    """When a chat through the gateway was answered, if it was."""
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "still there?"}]}
    try:
        reply = requests.post(f"{gateway}/chat/completions", json=body, timeout=10)
    except requests.RequestException:
        return None
    return time.monotonic() if reply.status_code == 200 else None


@dataclass
class Load:
    """Jobs submitted at a steady rate from a thread: those accepted, with when."""

    client: ChatqClient
    accepted: list[tuple[float, str]] = field(default_factory=list)
    refused: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self, every_s: float) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            try:
                job_id = self.client.submit(f"Sentinel question {n}", max_tokens=4)
                self.accepted.append((time.monotonic(), job_id))
            except (ChatqError, OSError):  # not accepted: the caller was told so
                self.refused += 1
            time.sleep(every_s)  # the load's pace


failing_over = stack_fixture(
    scope="function",
    from_fixtures=lambda group: {"redis_server": group.url},
    workers=2,
    gateway=True,
    extra_env=SHORT_CHECKS,
)


def test_jobs_flow_again_after_the_master_dies_and_every_accepted_job_ends_once(
    group, failing_over
):
    stack = failing_over
    settings = Settings(
        _env_file=None,
        redis_url=stack.redis_url,
        provider_base_url=stack.sim_url,
        redis_wait_replicas=1,  # accepted means a replica has it too
        **{k.removeprefix("CHATQ_").lower(): v for k, v in SHORT_CHECKS.items()},
    )
    with ChatqClient(settings) as client:
        load = Load(client)
        submitter = threading.Thread(target=load.run, args=(0.05,), daemon=True)
        submitter.start()
        eventually(lambda: len(load.accepted) >= 40 or None, timeout=30)
        killed_at = time.monotonic()
        kill(group.master)
        resumed_at = eventually(lambda: _first_after(load, killed_at + 1), timeout=60)
        chatted_at = eventually(lambda: _chat(stack.gateway_url), timeout=60)
        time.sleep(5)  # a steady load on the new master
        load.stopping.set()
        submitter.join(timeout=30)
        results = {job_id: client.result(job_id, timeout=120) for _, job_id in load.accepted}
    redis = stack.settings_redis()
    ends = {
        job_id: sum(1 for _, e in redis.xrange(keys.events_key(job_id)) if e["type"] == "end")
        for job_id in results
    }
    assert [r.status for r in results.values()].count(JobStatus.done) == len(results)
    assert set(ends.values()) == {1}, "each accepted job ended exactly once"
    recovery_s, gateway_s = resumed_at - killed_at, chatted_at - killed_at
    print(
        f"sentinel failover: jobs accepted again {recovery_s:.1f} s after the master died, "
        f"a chat through the gateway answered at {gateway_s:.1f} s; {len(results)} accepted, "
        f"{load.refused} refused while it failed over"
    )
    assert recovery_s <= RECOVERY_BOUND_S
    assert gateway_s <= RECOVERY_BOUND_S


def test_a_job_no_replica_took_in_time_is_refused_with_a_retry(redis_server):
    settings = Settings(
        _env_file=None, redis_url=redis_server, redis_wait_replicas=1, redis_wait_timeout_ms=50
    )
    refusal = pytest.raises(QueueUnavailable, match="0 of 1 replica")
    with ChatqClient(settings) as client, refusal as refused:  # the server has no replica
        client.submit("Is this durable?", max_tokens=4)
    assert refused.value.retry_after  # the gateway answers 503 with Retry-After
