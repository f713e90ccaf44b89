"""``chatq deployments``: each deployment's limits and its live, cluster-wide state."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from chatq.shared import keys
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import Settings


def show_deployments(settings: Settings, console: Console) -> None:
    registry = DeploymentRegistry(settings)
    redis = sync_client(settings.effective_redis_url)
    now_ms = time.time() * 1000
    table = Table(title="deployments (state shared by every worker)")
    for column in (
        "alias",
        "name",
        "url",
        "limits",
        "in flight",
        "state",
        "failures / 429s",
        "retired keys",
    ):
        table.add_column(column)
    try:
        for alias in registry.aliases():
            for d in registry.for_alias(alias):
                k = lambda part, name=d.name: keys.deployment_key(name, part)  # noqa: E731
                stats = redis.hgetall(k("stats"))
                cooldown = float(redis.get(k("cooldown")) or 0)
                paused_ms = max(0, redis.pttl(k("paused")))
                state = "ok"
                if cooldown > now_ms:
                    state = f"cooling down {(cooldown - now_ms) / 1000:.0f} s"
                elif paused_ms:
                    state = f"paused {paused_ms / 1000:.1f} s (429)"
                limits = (
                    ", ".join(
                        f"{label} {value}"
                        for label, value in (
                            ("rpm", d.rpm),
                            ("tpm", d.tpm),
                            ("conc", d.max_concurrency),
                        )
                        if value
                    )
                    or "none"
                )
                inflight = redis.zcount(k("inflight"), now_ms, "+inf")
                table.add_row(
                    alias,
                    d.name,
                    f"{d.url} ({d.transport})",
                    limits,
                    str(inflight),
                    state,
                    f"{stats.get('failures', 0)} / {stats.get('rate_limited', 0)}",
                    f"{redis.scard(k('bad_keys'))} of {len(d.api_keys)}",
                )
    finally:
        redis.close()
    console.print(table)
