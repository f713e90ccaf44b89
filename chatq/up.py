"""``chatq up``: the whole local stack in one process tree. A part that dies is restarted
while the rest keep serving (``chatq.supervisor``); Ctrl-C, SIGTERM or SIGHUP stop it all."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chatq.local_model import MODEL_SIZE_MB, install_model, provider_env
from chatq.processes import Part, port_in_use, stop
from chatq.redis_server import wait_for_redis
from chatq.shared.errors import ChatqError
from chatq.shared.redis_clients import redact
from chatq.shared.settings import LOCAL_MODEL, Settings, get_settings
from chatq.stack import (
    metrics_env,
    start_flower,
    start_gateway,
    start_local_model,
    start_redis,
    start_simulator,
    start_worker,
    start_workers,
    without_metrics_dir,
)
from chatq.supervisor import Supervisor


@dataclass
class StackOptions:
    workers: int
    gateway_port: int
    sim_port: int
    flower_port: int
    redis_port: int
    flower: bool = True
    demo_prompt: str | None = None
    once: bool = False
    sim_args: tuple[str, ...] = ()


def run_stack(settings: Settings, options: StackOptions, console: Console) -> None:
    """Starts every part, prints where each listens, runs the demo, then keeps the parts
    running until Ctrl-C (or SIGTERM, SIGHUP)."""
    supervisor = Supervisor(lambda text: console.print(f"[bold yellow]{text}[/]"))
    restore = _stop_on_signals()
    try:
        env, rows = _start(settings, options, supervisor, console)
        _print_table(console, rows)
        if settings.provider == "local" and settings.provider_base_url is None:
            console.print(
                "Chat with the local model from another shell: "
                "[bold]CHATQ_PROVIDER=local chatq chat 'Hello'[/]"
            )
        if options.demo_prompt:
            _demo(settings, env, options.demo_prompt)
        if options.once:
            return
        console.print("[bold]chatq is up.[/] Press Ctrl-C to stop everything.")
        while True:
            supervisor.check()
            time.sleep(CHECK_EVERY_S)
    except KeyboardInterrupt:
        console.print("\nStopping...")
    finally:
        restore()
        stop(list(reversed(supervisor.parts)))
        if supervisor.parts:
            console.print("All chatq processes stopped.")


CHECK_EVERY_S = 0.5


def _stop_on_signals() -> Callable[[], None]:
    """SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the stack; returns how to undo that. SIGINT
    is set too, as a process started from a shell's background job inherits it ignored."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in stopping}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _start(
    settings: Settings, options: StackOptions, supervisor: Supervisor, console: Console
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Starts each part under ``supervisor``, with how to start it again should it die."""
    env: dict[str, str] = metrics_env(settings.data_dir / "metrics")
    rows: list[tuple[str, str]] = []
    logs = settings.data_dir.resolve() / "logs"

    def run(what: str, start: Callable[[], Part]) -> Part:
        with console.status(f"Starting {what}..."):
            part = start()
        supervisor.watch(part, start)
        return part

    if settings.redis_url is None and settings.redis_sentinels is None:
        if port_in_use(options.redis_port):
            raise ChatqError(
                f"Port {options.redis_port} is taken, so the embedded Redis cannot start there. "
                "Pass --redis-port, or set CHATQ_REDIS_URL to use that Redis."
            )
        data_dir = settings.data_dir / "redis"
        redis = run(
            "the embedded Redis", lambda: start_redis(options.redis_port, data_dir, persist=True)
        )
        env["CHATQ_REDIS_URL"] = redis.address
        rows.append(("Redis (embedded)", redis.address))
    else:
        wait_for_redis(settings.effective_redis_url)
        env["CHATQ_REDIS_URL"] = settings.effective_redis_url
        rows.append(("Redis", redact(settings.effective_redis_url)))
    if settings.provider_base_url is None and settings.provider == "local":
        with console.status(f"Finding the local model ({MODEL_SIZE_MB} MB; installed once)..."):
            install_model()
        model = run(
            "the local model (llama.cpp's server)",
            lambda: start_local_model(options.sim_port, log_dir=logs),
        )
        env.update(provider_env(model.address))
        rows.append((f"Local model ({LOCAL_MODEL}, llama.cpp)", model.address))
    elif settings.provider_base_url is None:
        sim = run(
            "the provider simulator",
            lambda: start_simulator(options.sim_port, options.sim_args, log_dir=logs),
        )
        env["CHATQ_PROVIDER_BASE_URL"] = sim.address
        env.setdefault("CHATQ_PROVIDER_MAX_N", "8")  # the simulator answers 'n' choices
        rows.append(("Provider simulator", sim.address))
    else:
        rows.append(("Provider", settings.provider_base_url))
    child_settings = settings.model_copy(
        update={
            "redis_url": env["CHATQ_REDIS_URL"],
            "provider_base_url": env.get("CHATQ_PROVIDER_BASE_URL", settings.provider_base_url),
        }
    )
    with console.status(f"Starting {options.workers} worker process(es)..."):
        workers = start_workers(
            options.workers, child_settings, env, log_dir=logs, reserve_interactive=True
        )
    for index, worker in enumerate(workers, start=1):
        supervisor.watch(worker, partial(_worker_again, index, options, child_settings, env, logs))
    rows.append(("Workers", ", ".join(w.address for w in workers)))
    gateway = run(
        "the gateway",
        lambda: start_gateway(settings.gateway_host, options.gateway_port, env, log_dir=logs),
    )
    rows.append(("Gateway (OpenAI API)", gateway.address))
    if options.flower:
        flower_env = without_metrics_dir(env)
        flower = run("Flower", lambda: start_flower(options.flower_port, flower_env, log_dir=logs))
        rows.append(("Flower", flower.address))
    rows.append(("Logs", str(logs)))
    return env, rows


def _worker_again(
    index: int, options: StackOptions, settings: Settings, env: dict[str, str], logs: Path
) -> Part:
    return start_worker(
        index, options.workers, settings, env, log_dir=logs, reserve_interactive=True
    )


def _print_table(console: Console, rows: list[tuple[str, str]]) -> None:
    table = Table(title="chatq local stack", show_header=True)
    table.add_column("part")
    table.add_column("listens at")
    for name, where in rows:
        table.add_row(name, where)
    console.print(table)
    if not get_settings().auth_required:
        console.print(
            "[bold yellow on red] OPEN GATEWAY [/] [bold]authentication is off[/]: anyone who "
            "can reach it may use it. Set CHATQ_AUTH_REQUIRED=true and create keys with "
            "`chatq keys create --tenant NAME`."
        )


def _demo(settings: Settings, env: dict[str, str], prompt: str) -> None:
    from chatq.cli import stream_chat
    from chatq.producers.client import ChatqClient

    demo_settings = settings.model_copy(update={"redis_url": env["CHATQ_REDIS_URL"]})
    with ChatqClient(demo_settings) as client:
        stream_chat(client, prompt)
