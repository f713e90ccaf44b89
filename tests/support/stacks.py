"""Stacks of real parts for integration tests: the simulator over HTTP, worker processes and
the gateway, on a real Redis; each started as `chatq up` starts them, nothing mocked.

A module declares the stack it needs in one line, ``name = stack_fixture(...)``; modules that
name the same ``shared`` key get one stack between them for the session."""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import openai
import pytest
import requests
from chatq.producers.client import ChatqClient
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import SchedulerPolicy, Settings
from redis import Redis

from chatq.local_model import provider_env
from chatq.processes import Part, free_port, stop
from chatq.stack import (
    metrics_env,
    start_gateway,
    start_local_model,
    start_simulator,
    start_workers,
)

# Fast retries so fault tests finish quickly; the schedule's shape is unit-tested.
TEST_ENV = {
    "CHATQ_RETRY__INITIAL_DELAY": "0.05",
    "CHATQ_RETRY__MAX_DELAY": "1",
    "CHATQ_RETRY__MAX_RETRIES": "12",
    "CHATQ_PROVIDER_TIMEOUT__READ": "5",
    "CHATQ_TASK_EVENTS": "false",
    "CHATQ_LOG_LEVEL": "WARNING",
}

# The Redis databases stacks run on, one each while it runs, so no two stacks alive at once
# share a queue. Database 0 is the ``redis_client`` fixture's (flushed by each test that takes
# it), and 15 is test_task_display's.
STACK_DATABASES = range(1, 15)
_databases_taken: set[str] = set()


def _take_database(redis_server: str) -> str:
    server = redis_server.rsplit("/", 1)[0]
    for number in STACK_DATABASES:
        url = f"{server}/{number}"
        if url not in _databases_taken:
            _databases_taken.add(url)
            return url
    raise RuntimeError(f"every stack database of {server} is taken: too many stacks at once")


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

    def openai(self, api_key: str = "unused") -> openai.OpenAI:
        """The official OpenAI client on the gateway, as a caller uses it (no retries)."""
        return openai.OpenAI(base_url=self.gateway_url, api_key=api_key, max_retries=0)

    def settings_redis(self) -> Redis:
        return sync_client(self.redis_url)

    def sim_stats(self) -> dict:
        return requests.get(self.sim_url.removesuffix("/v1") + "/sim/stats", timeout=5).json()

    def sim_requests(self, limit: int = 100_000) -> list[dict]:
        url = self.sim_url.removesuffix("/v1") + f"/sim/requests?limit={limit}"
        return requests.get(url, timeout=5).json()["requests"]

    def sim_reset(self) -> None:
        requests.post(self.sim_url.removesuffix("/v1") + "/sim/reset", timeout=5)

    def stop(self) -> None:
        """Stops every part, and gives the stack's Redis database back."""
        try:
            stop(self.parts)
        finally:
            _databases_taken.discard(self.redis_url)


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
    worker_hosts: Sequence[str] = (),
    gateway: bool = False,
    extra_env: dict[str, str] | None = None,
    deployments: Callable[[str], str] | None = None,
    log_dir: Path | None = None,
    client_settings: dict[str, Any] | None = None,
    local_model: bool = False,
) -> Stack:
    """Simulator, worker processes and optionally the gateway on an existing Redis, in a
    database of the stack's own.

    ``worker_hosts``: ``workers`` workers named for each of these hosts, as if on other
    machines (default: this one). ``log_dir``: workers and gateway write their logs there.
    ``client_settings``: what the stack's own ``Settings`` (``client()``'s) set besides.
    ``local_model``: llama.cpp's server on the local model is the provider, not the simulator
    (``sim_url`` is its address; ``sim_args`` are ignored).
    """
    redis_url = _take_database(redis_server)
    parts: list[Part] = []
    try:
        sync_client(redis_url).flushdb()
        if local_model:
            sim = start_local_model(free_port())
        else:
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
            **(provider_env(sim.address) if local_model else {}),
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
            provider=env.get("CHATQ_PROVIDER", "simulator"),
            **({"models": env["CHATQ_MODELS"].split(",")} if "CHATQ_MODELS" in env else {}),
            **(client_settings or {}),
        )
        for host in worker_hosts or [None]:
            parts += start_workers(workers, settings, env, log_dir=log_dir, host=host)
        if gateway:
            parts.append(start_gateway("127.0.0.1", free_port(), env, log_dir=log_dir))
        return Stack(redis_url, sim.address, settings, env, parts)
    except BaseException:
        try:
            stop(parts)
        finally:
            _databases_taken.discard(redis_url)
        raise


class Stoppable(Protocol):
    def stop(self) -> None: ...


def stack_fixture(
    *,
    scope: str = "module",
    shared: str | None = None,
    params: Sequence[Any] | None = None,
    per_param: Callable[[Any], dict[str, Any]] | None = None,
    from_fixtures: Callable[..., dict[str, Any]] | None = None,
    start: Callable[..., Stoppable] | None = None,
    **options: Any,
) -> Any:
    """A fixture giving a stack started with ``options``, stopped when its ``scope`` ends.

    The stack is ``start_stack``'s, on the ``redis_server`` fixture's Redis unless the options
    name another ``redis_server``; or, with ``start``, what ``start(**options)`` starts.
    ``params``: one stack per parameter, with what ``per_param(param)`` adds to the options.
    ``from_fixtures``: options that come from other fixtures, which its parameters name.
    ``shared``: one stack for every module naming the same key, stopped when the session ends.
    """
    assert shared is None or start is None, "only start_stack's stacks are shared"

    @pytest.fixture(scope=scope, params=params)  # type: ignore[call-overload]
    def running_stack(request: pytest.FixtureRequest) -> Iterator[Any]:
        chosen = dict(options)
        if per_param is not None:
            chosen.update(per_param(request.param))
        if from_fixtures is not None:
            names = inspect.signature(from_fixtures).parameters
            chosen.update(from_fixtures(**{n: request.getfixturevalue(n) for n in names}))
        if start is None and "redis_server" not in chosen:
            chosen["redis_server"] = request.getfixturevalue("redis_server")
        if shared is not None:
            yield request.getfixturevalue("stack_pool").get(shared, chosen)
            return
        started = (start or start_stack)(**chosen)
        try:
            yield started
        finally:
            started.stop()

    return running_stack


class StackPool:
    """Stacks kept for the session, by key, for modules that share one."""

    def __init__(self) -> None:
        self._stacks: dict[str, Stack] = {}
        self._options: dict[str, dict[str, Any]] = {}

    def get(self, key: str, options: dict[str, Any]) -> Stack:
        if key not in self._stacks:
            self._stacks[key] = start_stack(**options)
            self._options[key] = options
        assert self._options[key] == options, f"modules sharing {key!r} ask for other stacks"
        return self._stacks[key]

    def stop_all(self) -> None:
        for running in self._stacks.values():
            running.stop()
        self._stacks.clear()
        self._options.clear()
