"""Real parts for integration tests: a Redis server, the simulator over HTTP, worker processes.

Nothing here is mocked: each fixture starts the same processes `chatq up` starts.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from chatq.producers.client import ChatqClient
from chatq.shared import keys
from chatq.shared.jobs import JobStatus
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import SchedulerPolicy, Settings
from redis import Redis

from chatq.processes import Part, free_port, stop
from chatq.stack import metrics_env, start_gateway, start_redis, start_simulator, start_workers

# Fast retries so fault tests finish quickly; the schedule's shape is unit-tested.
TEST_ENV = {
    "CHATQ_RETRY__INITIAL_DELAY": "0.05",
    "CHATQ_RETRY__MAX_DELAY": "1",
    "CHATQ_RETRY__MAX_RETRIES": "12",
    "CHATQ_PROVIDER_TIMEOUT__READ": "5",
    "CHATQ_TASK_EVENTS": "false",
    "CHATQ_LOG_LEVEL": "WARNING",
}


T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float = 60.0, every: float = 0.1) -> T:
    """What ``probe`` returns once it returns something (not None), asked every ``every``
    seconds; fails the test if that takes longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"still nothing after {timeout:g} s"
        time.sleep(every)


@dataclass
class Stack:
    """A running set of real parts, and how to reach them."""

    redis_url: str
    sim_url: str
    settings: Settings
    env: dict[str, str]
    parts: list[Part]

    def client(self) -> ChatqClient:
        return ChatqClient(self.settings)

    def settings_redis(self) -> Redis:
        return sync_client(self.redis_url)

    def sim_stats(self) -> dict:
        return requests.get(self.sim_url.removesuffix("/v1") + "/sim/stats", timeout=5).json()

    def sim_requests(self, limit: int = 100_000) -> list[dict]:
        url = self.sim_url.removesuffix("/v1") + f"/sim/requests?limit={limit}"
        return requests.get(url, timeout=5).json()["requests"]

    def sim_reset(self) -> None:
        requests.post(self.sim_url.removesuffix("/v1") + "/sim/reset", timeout=5)


def ended_count(redis: Redis, job_ids: Sequence[str]) -> int:
    """How many of the jobs have ended, by their records."""
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job_key(job_id), "status")
        ended = {s.value for s in JobStatus if s.is_terminal}
        return sum(status in ended for status in pipe.execute())


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="chatq-redis-") as data_dir:
        part = start_redis(free_port(), Path(data_dir), persist=False)
        try:
            yield part.address
        finally:
            stop([part])


@pytest.fixture()
def redis_client(redis_server: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_server, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


_databases = itertools.count(1)

# The provider is another machine in production. Here it shares two cores with chatq, and the
# time its requests wait for a CPU would count against chatq's limiter: the simulator stamps a
# request when it reads it, so one that waited 50 ms can seem to bunch up with later ones in
# its 1-second limit window. It gets the CPU first (where the tests run as root).
PROVIDER_NICENESS = -10


def start_stack(
    redis_server: str,
    *,
    sim_args: Sequence[str] = (),
    workers: int = 1,
    gateway: bool = False,
    extra_env: dict[str, str] | None = None,
    deployments: Callable[[str], str] | None = None,
) -> Stack:
    """Simulator, worker processes and optionally the gateway on an existing Redis.

    Each stack gets a Redis database of its own, so stacks alive at once never share a queue.
    """
    redis_url = f"{redis_server.rsplit('/', 1)[0]}/{next(_databases) % 16}"
    sync_client(redis_url).flushdb()
    parts: list[Part] = []
    try:
        sim = start_simulator(
            free_port(), ["--log-size", "100000", *sim_args], niceness=PROVIDER_NICENESS
        )
        parts.append(sim)
        env = {
            **TEST_ENV,
            "CHATQ_REDIS_URL": redis_url,
            "CHATQ_PROVIDER_BASE_URL": sim.address,
            "CHATQ_FILES_DIR": tempfile.mkdtemp(prefix="chatq-files-"),
            **metrics_env(Path(tempfile.mkdtemp(prefix="chatq-metrics-"))),
            **(extra_env or {}),
        }
        if deployments is not None:  # a TOML file, given the simulator's base URL
            path = Path(tempfile.mkdtemp(prefix="chatq-deployments-")) / "deployments.toml"
            path.write_text(deployments(sim.address))
            env["CHATQ_DEPLOYMENTS_FILE"] = str(path)
        settings = Settings(
            _env_file=None,
            redis_url=redis_url,
            provider_base_url=sim.address,
            scheduler=SchedulerPolicy(mode=env.get("CHATQ_SCHEDULER__MODE", "fair")),
        )
        parts.extend(start_workers(workers, settings, env, quiet=False))
        if gateway:
            port = free_port()
            parts.append(start_gateway("127.0.0.1", port, env))
        return Stack(redis_url, sim.address, settings, env, parts)
    except BaseException:
        stop(parts)
        raise


@pytest.fixture(scope="module")
def stack(redis_server: str) -> Iterator[Stack]:
    """A plain stack: zero-latency simulator and one worker process."""
    running = start_stack(redis_server)
    yield running
    stop(running.parts)
