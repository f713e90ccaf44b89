"""Starting each part of the local stack as a real process, ready before it is returned."""

from __future__ import annotations

import shutil
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatq.local_model import SLOTS
from chatq.processes import Part, http_ok, python_module_command, spawn, stop, wait_until
from chatq.producers.jobs import producer_app
from chatq.redis_server import redis_answers, redis_command, sentinel_command
from chatq.shared.settings import Settings

READY_TIMEOUT_S = 60.0


def start_redis(
    port: int,
    data_dir: Path,
    *,
    persist: bool,
    replica_of: int | None = None,
    host: str = "127.0.0.1",
) -> Part:
    data_dir.mkdir(parents=True, exist_ok=True)
    command = redis_command(port, data_dir, persist=persist, replica_of=replica_of, host=host)
    part = spawn("redis", command)
    part.address = f"redis://{host}:{port}/0"
    return _ready(
        part, lambda: redis_answers(part.address), f"Redis (log: {data_dir / 'redis.log'})"
    )


def start_sentinel(
    port: int,
    data_dir: Path,
    *,
    master: str,
    master_port: int,
    quorum: int = 2,
    down_after_ms: int = 1000,
) -> Part:
    """A Redis Sentinel watching the master on ``master_port`` under the name ``master``."""
    command = sentinel_command(
        port,
        data_dir,
        master=master,
        master_port=master_port,
        quorum=quorum,
        down_after_ms=down_after_ms,
    )
    part = spawn("sentinel", command, address=f"127.0.0.1:{port}")
    return _ready(
        part,
        lambda: redis_answers(f"redis://127.0.0.1:{port}"),
        f"Redis Sentinel (log: {data_dir / 'sentinel.log'})",
    )


def start_simulator(
    port: int,
    args: Sequence[str] = (),
    *,
    log_dir: Path | None = None,
    niceness: int = 0,
    host: str = "127.0.0.1",
) -> Part:
    command = python_module_command("chatq.simulator", "--host", host, "--port", str(port), *args)
    part = spawn(
        "simulator",
        command,
        address=f"http://{host}:{port}/v1",
        quiet=True,
        log_file=_log(log_dir, "simulator"),
        niceness=niceness,
    )
    return _ready(part, http_ok(f"http://{host}:{port}/health"), "the provider simulator")


def start_local_model(
    port: int,
    *,
    parallel: int = SLOTS,
    threads: int = 1,
    context: int = 8192,
    log_dir: Path | None = None,
    niceness: int = 0,
    host: str = "127.0.0.1",
) -> Part:
    """llama.cpp's server on the local model (``chatq.local_model``), ready to answer."""
    command = python_module_command(
        "chatq.local_model",
        *("--host", host, "--port", str(port), "--parallel", str(parallel)),
        *("--threads", str(threads), "--context", str(context)),
    )
    part = spawn(
        "local model",
        command,
        address=f"http://{host}:{port}/v1",
        quiet=True,
        log_file=_log(log_dir, "local-model"),
        niceness=niceness,
    )
    return _ready(part, http_ok(f"http://{host}:{port}/health"), "the local model server")


def worker_name(index: int, group: str = "worker", host: str | None = None) -> str:
    return f"{group}{index}@{host or socket.gethostname()}"


def start_workers(
    count: int,
    settings: Settings,
    env: Mapping[str, str],
    *,
    group: str = "worker",
    extra_args: Sequence[str] = (),
    quiet: bool = False,
    log_dir: Path | None = None,
    reserve_interactive: bool = False,
    host: str | None = None,
) -> list[Part]:
    """Starts ``count`` worker processes and waits until every one answers a ping.

    With ``reserve_interactive`` and two or more workers, the first consumes only the
    interactive queue, so a bulk flood never takes the last worker chat traffic can use.
    """
    spec = WorkerSpec(count, group, tuple(extra_args), quiet, log_dir, reserve_interactive, host)
    parts = [_spawn_worker(index, spec, settings, env) for index in range(1, count + 1)]
    try:
        wait_for_workers([p.address for p in parts], settings, parts)
    except BaseException:
        stop(parts)
        raise
    return parts


def start_worker(
    index: int,
    count: int,
    settings: Settings,
    env: Mapping[str, str],
    *,
    log_dir: Path | None = None,
    reserve_interactive: bool = False,
    quiet: bool = False,
) -> Part:
    """Starts worker ``index`` of ``count`` again, as ``start_workers`` did, and waits for it."""
    spec = WorkerSpec(count, quiet=quiet, log_dir=log_dir, reserve_interactive=reserve_interactive)
    part = _spawn_worker(index, spec, settings, env)
    try:
        wait_for_workers([part.address], settings, [part])
    except BaseException:
        stop([part])
        raise
    return part


@dataclass(frozen=True)
class WorkerSpec:
    """How a group of worker processes is started."""

    count: int
    group: str = "worker"
    extra_args: tuple[str, ...] = ()
    quiet: bool = False
    log_dir: Path | None = None
    reserve_interactive: bool = False
    host: str | None = None


def _spawn_worker(index: int, spec: WorkerSpec, settings: Settings, env: Mapping[str, str]) -> Part:
    name = worker_name(index, spec.group, spec.host)
    args = list(spec.extra_args)
    if spec.reserve_interactive and spec.count > 1 and index == 1:
        args += ["--queues", settings.interactive_queue]
    command = python_module_command("chatq", "worker", "--name", name, *args)
    log_file = _log(spec.log_dir, f"{spec.group}{index}")
    return spawn(
        f"worker {name}", command, env=env, address=name, quiet=spec.quiet, log_file=log_file
    )


def wait_for_workers(names: Sequence[str], settings: Settings, parts: Sequence[Part]) -> None:
    app = producer_app(settings)
    expected = set(names)

    def all_answer() -> bool:
        for part in parts:
            if not part.alive():
                raise RuntimeError(f"{part.name} exited with code {part.process.returncode}")
        replies = app.control.ping(timeout=0.5) or []
        return expected <= {name for reply in replies for name in reply}

    try:
        wait_until(all_answer, timeout=READY_TIMEOUT_S, what="the workers")
    finally:
        app.close()


def start_gateway(
    host: str, port: int, env: Mapping[str, str], *, log_dir: Path | None = None
) -> Part:
    command = python_module_command("chatq", "gateway", "--host", host, "--port", str(port))
    part = spawn(
        "gateway",
        command,
        env=env,
        address=f"http://{host}:{port}/v1",
        log_file=_log(log_dir, "gateway"),
    )
    return _ready(part, http_ok(f"http://{host}:{port}/health"), "the gateway")


def start_flower(port: int, env: Mapping[str, str], *, log_dir: Path | None = None) -> Part:
    command = python_module_command(
        "celery",
        "-A",
        "chatq.workers.celery_app",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
        "--logging=warning",
    )
    part = spawn(
        "flower",
        command,
        env=env,
        address=f"http://127.0.0.1:{port}",
        quiet=True,
        log_file=_log(log_dir, "flower"),
        # Flower keeps nothing worth a clean stop, and on SIGTERM it may spend longer than
        # the rest of the stack reconnecting to the Redis that died with it.
        death_signal=signal.SIGKILL,
    )
    return _ready(part, http_ok(f"http://127.0.0.1:{port}/healthcheck"), "Flower")


def _ready(part: Part, check: Callable[[], bool], what: str) -> Part:
    """``part`` once ``check`` passes; if it never does, the process is stopped, not left."""
    try:
        wait_until(check, timeout=READY_TIMEOUT_S, what=what, part=part)
    except BaseException:
        stop([part])
        raise
    return part


def _log(log_dir: Path | None, name: str) -> Path | None:
    return None if log_dir is None else log_dir / f"{name}.log"


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_env(directory: Path) -> dict[str, str]:
    """An empty directory where the stack's processes write their metrics, for the gateway's
    ``/metrics`` to sum (Prometheus client multiprocess mode)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return {MULTIPROC_ENV: str(directory.resolve())}


def without_metrics_dir(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a process that must not write there (Flower keeps metrics of its own)."""
    return {k: v for k, v in env.items() if k != MULTIPROC_ENV}
