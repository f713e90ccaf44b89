"""Stacks of real parts for integration tests: the simulator over HTTP, worker processes and
the gateway, on a real Redis; each started as `chatq up` starts them, nothing mocked.

A module declares the stack it needs with ``stack_fixture(...)``; modules that name the same
``shared`` key get one stack between them for the session."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from chatq.producers.client import ChatqClient
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import SchedulerPolicy, Settings
from redis import Redis

from chatq.processes import Part, free_port, stop
from chatq.stack import metrics_env, start_gateway, start_simulator, start_workers

# Fast retries so fault tests finish quickly; the schedule's shape is unit-tested.
TEST_ENV = {
    "CHATQ_RETRY__INITIAL_DELAY": "0.05",
    "CHATQ_RETRY__MAX_DELAY": "1",
    "CHATQ_RETRY__MAX_RETRIES": "12",
    "CHATQ_PROVIDER_TIMEOUT__READ": "5",
    "CHATQ_TASK_EVENTS": "false",
    "CHATQ_LOG_LEVEL": "WARNING",
}


@dataclass
class Stack:
    """A running set of real parts, and how to reach them."""

    redis_url: str
    sim_url: str
    settings: Settings
    env: dict[str, str]
    parts: list[Part]

    @property
    def gateway_url(self) -> str:
        """The gateway's base URL (``.../v1``), where the stack has one."""
        return next(p.address for p in self.parts if p.name == "gateway")

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


def stack_fixture(
    *,
    scope: str = "module",
    shared: str | None = None,
    params: Sequence[Any] | None = None,
    per_param: Callable[[Any], dict[str, Any]] | None = None,
    **options: Any,
) -> Any:
    """A fixture giving a stack started with ``options`` (as ``start_stack`` takes them),
    stopped when its ``scope`` ends. With ``params``, one stack per parameter, started with
    ``options`` and what ``per_param(param)`` adds. With ``shared``, one stack for every
    module that names the same key, stopped at the end of the session."""

    @pytest.fixture(scope=scope, params=params)  # type: ignore[call-overload]
    def running_stack(request: pytest.FixtureRequest, redis_server: str) -> Iterator[Stack]:
        if shared is not None:
            yield request.getfixturevalue("stack_pool").get(shared, redis_server, options)
            return
        chosen = dict(options)
        if per_param is not None:
            chosen.update(per_param(request.param))
        started = start_stack(redis_server, **chosen)
        try:
            yield started
        finally:
            stop(started.parts)

    return running_stack


class StackPool:
    """Stacks kept for the session, by key, for modules that share one."""

    def __init__(self) -> None:
        self._stacks: dict[str, Stack] = {}

    def get(self, key: str, redis_server: str, options: dict[str, Any]) -> Stack:
        if key not in self._stacks:
            self._stacks[key] = start_stack(redis_server, **options)
        return self._stacks[key]

    def stop_all(self) -> None:
        for running in self._stacks.values():
            stop(running.parts)
        self._stacks.clear()
