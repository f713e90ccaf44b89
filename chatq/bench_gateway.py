"""``chatq bench --scenario gateway``: a fixed concurrent load on the gateway, every request
unique, against a fast simulator; the same load sent straight to the simulator is the
baseline. Reported: requests/s and latency of both, and what chatq spent per request: CPU
of each of its processes and of Redis, and Redis commands by name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from chatq.bench_stack import bench_stack
from chatq.http_load import LoadResult, run_load
from chatq.process_cpu import RedisUsage, cpu_seconds
from chatq.processes import Part, free_port, stop
from chatq.shared.redis_clients import sync_client
from chatq.stack import start_flower, start_gateway, without_metrics_dir


@dataclass
class GatewayOptions:
    connections: int = 100
    seconds: float = 20.0
    warmup_s: float = 3.0
    ttft_ms: float = 20.0
    flower: bool = True  # as `chatq up` runs it: Flower consuming the workers' task events
    task_events: bool = False  # the default; Flower, running, turns them on

    @classmethod
    def quick(cls) -> GatewayOptions:
        return cls(seconds=8.0, warmup_s=2.0)


def _body(tag: str) -> Any:
    def make(n: int) -> bytes:
        content = f"Gateway probe {tag}-{n}: say hello."
        return json.dumps(
            {"model": "sim-mini", "messages": [{"role": "user", "content": content}]}
        ).encode()

    return make


def measure_gateway(options: GatewayOptions, console: Console) -> dict[str, Any]:
    run = load_gateway(options, console, direct=True)
    assert run.direct is not None
    return _report(run.direct, run.through, run.cpu_s, run.redis)


@dataclass(frozen=True)
class GatewayRun:
    """One measured load through the gateway (and, if asked, straight to the simulator)."""

    through: LoadResult
    cpu_s: dict[str, float]  # CPU seconds each watched process spent under the load
    redis: RedisUsage
    direct: LoadResult | None = None

    def cpu_ms_per_request(self) -> float:
        """Gateway, worker and Redis (not Flower), per request served."""
        chatq_s = sum(s for name, s in self.cpu_s.items() if name != "flower") + self.redis.cpu_s
        return chatq_s * 1000 / max(1, self.through.requests)


def load_gateway(
    options: GatewayOptions,
    console: Console,
    *,
    direct: bool,
    env: dict[str, str] | None = None,
    title: str = "Gateway",
) -> GatewayRun:
    """A stack of its own (with ``env``), warmed up, then the measured load."""
    sim_args = ("--ttft-ms", f"{options.ttft_ms:g}", "--tokens-per-s", "0")
    env = {"CHATQ_TASK_EVENTS": "true" if options.task_events else "false", **(env or {})}
    with bench_stack(console, title, sim_args=sim_args, env=env) as stack:
        parts: list[Part] = []
        try:
            gateway = start_gateway("127.0.0.1", free_port(), stack.env)
            parts.append(gateway)
            if options.flower:
                parts.append(start_flower(free_port(), without_metrics_dir(stack.env)))

            def load(url: str, tag: str, seconds: float) -> LoadResult:
                host, port = _host_port(url)
                return run_load(
                    host,
                    port,
                    "/v1/chat/completions",
                    _body(tag),
                    connections=options.connections,
                    seconds=seconds,
                )

            baseline = None
            if direct:
                with console.status(
                    f"Straight to the simulator, {options.connections} connections..."
                ):
                    baseline = load(stack.sim_url, "direct", options.seconds)
            with console.status("Warming the gateway up..."):
                load(gateway.address, "warm", options.warmup_s)
            watched = {"gateway": gateway, "worker": stack.workers[0], **_flower(parts)}
            redis = sync_client(stack.settings.effective_redis_url)
            before_cpu = {name: cpu_seconds(p.process.pid) for name, p in watched.items()}
            before_redis = RedisUsage.of(redis)
            with console.status(f"Through the gateway, {options.connections} connections..."):
                through = load(gateway.address, "gateway", options.seconds)
            cpu = {
                name: cpu_seconds(p.process.pid) - before_cpu[name] for name, p in watched.items()
            }
            used = RedisUsage.of(redis).since(before_redis)
            redis.close()
        finally:
            stop(parts)
    return GatewayRun(through, cpu, used, baseline)


def _flower(parts: list[Part]) -> dict[str, Part]:
    return {p.name: p for p in parts if p.name == "flower"}


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def _report(
    direct: LoadResult, through: LoadResult, cpu: dict[str, float], redis: RedisUsage
) -> dict[str, Any]:
    served = max(1, through.requests)
    per_request_ms = {name: round(seconds * 1000 / served, 3) for name, seconds in cpu.items()}
    redis_ms = round(redis.cpu_s * 1000 / served, 3)
    chatq_ms = sum(v for k, v in per_request_ms.items() if k != "flower") + redis_ms
    commands = sum(redis.commands.values())
    top = sorted(redis.commands.items(), key=lambda kv: -kv[1])
    return {
        "gateway_requests_per_s": round(through.per_s, 1),
        "gateway_direct_requests_per_s": round(direct.per_s, 1),
        "gateway_vs_direct_ratio": round(through.per_s / direct.per_s, 3) if direct.per_s else 0,
        "gateway_p50_ms": round(through.percentile_ms(50), 1),
        "gateway_p99_ms": round(through.percentile_ms(99), 1),
        "gateway_direct_p50_ms": round(direct.percentile_ms(50), 1),
        "gateway_errors": through.errors,
        "gateway_cpu_ms_per_request": round(chatq_ms, 3),
        "gateway_cpu_ms_per_request_by_process": {**per_request_ms, "redis": redis_ms},
        "gateway_redis_commands_per_request": round(commands / served, 1),
        "gateway_redis_commands_top": {name: round(n / served, 2) for name, n in top},
    }
