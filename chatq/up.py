"""``chatq up``: the whole local stack in one process tree, stopped as one on Ctrl-C."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from chatq.processes import Part, port_in_use, stop
from chatq.redis_server import wait_for_redis
from chatq.stack import (
    metrics_env,
    start_flower,
    start_gateway,
    start_redis,
    start_simulator,
    start_workers,
    without_metrics_dir,
)
from shared.errors import ChatqError
from shared.settings import Settings, get_settings


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
    """Starts every part, prints where each listens, runs the demo, waits for Ctrl-C."""
    parts: list[Part] = []
    try:
        env, rows = _start(settings, options, parts, console)
        _print_table(console, rows)
        if options.demo_prompt:
            _demo(settings, env, options.demo_prompt)
        if options.once:
            return
        console.print("[bold]chatq is up.[/] Press Ctrl-C to stop everything.")
        while all(part.alive() for part in parts):
            time.sleep(0.5)
        dead = [p.name for p in parts if not p.alive()]
        raise ChatqError(f"{', '.join(dead)} stopped unexpectedly; stopping the stack.")
    except KeyboardInterrupt:
        console.print("\nStopping...")
    finally:
        stop(list(reversed(parts)))
        if parts:
            console.print("All chatq processes stopped.")


def _start(
    settings: Settings, options: StackOptions, parts: list[Part], console: Console
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    env: dict[str, str] = metrics_env(settings.data_dir / "metrics")
    rows: list[tuple[str, str]] = []
    logs = settings.data_dir.resolve() / "logs"
    if settings.redis_url is None:
        if port_in_use(options.redis_port):
            raise ChatqError(
                f"Port {options.redis_port} is taken, so the embedded Redis cannot start there. "
                "Pass --redis-port, or set CHATQ_REDIS_URL to use that Redis."
            )
        with console.status("Starting the embedded Redis..."):
            redis = start_redis(options.redis_port, settings.data_dir / "redis", persist=True)
        parts.append(redis)
        env["CHATQ_REDIS_URL"] = redis.address
        rows.append(("Redis (embedded)", redis.address))
    else:
        wait_for_redis(settings.redis_url)
        env["CHATQ_REDIS_URL"] = settings.redis_url
        rows.append(("Redis", _hide_password(settings.redis_url)))
    if settings.provider_base_url is None:
        with console.status("Starting the provider simulator..."):
            sim = start_simulator(options.sim_port, options.sim_args, log_dir=logs)
        parts.append(sim)
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
    parts.extend(workers)
    rows.append(("Workers", ", ".join(w.address for w in workers)))
    with console.status("Starting the gateway..."):
        gateway = start_gateway(settings.gateway_host, options.gateway_port, env, log_dir=logs)
    parts.append(gateway)
    rows.append(("Gateway (OpenAI API)", gateway.address))
    if options.flower:
        with console.status("Starting Flower..."):
            flower = start_flower(options.flower_port, without_metrics_dir(env), log_dir=logs)
        parts.append(flower)
        rows.append(("Flower", flower.address))
    rows.append(("Logs", str(logs)))
    return env, rows


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
    from producers.client import ChatqClient

    demo_settings = settings.model_copy(update={"redis_url": env["CHATQ_REDIS_URL"]})
    with ChatqClient(demo_settings) as client:
        stream_chat(client, prompt)


def _hide_password(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
