"""``chatq queue``: who waits in the fair scheduler, for how long, and each tenant's share of
the provider's limits in the last minute."""

from __future__ import annotations

import json
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from chatq.shared.job_state.waiting import SchedulerView
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import Settings


def show_queue(settings: Settings, console: Console, *, as_json: bool = False) -> None:
    view = SchedulerView(sync_client(settings.effective_redis_url))
    waits, shares = view.waits(), view.shares()
    if as_json:
        print(json.dumps({"waiting": [asdict(w) for w in waits], "shares": shares}))
        return
    if not waits:
        console.print("nothing waits: every pool has room for what arrives")
    else:
        table = Table(title="Waiting in the scheduler (longest wait first)")
        for column in ("pool", "band", "tenant", "jobs", "oldest wait", "share, last minute"):
            table.add_column(column, justify="right" if column[0] in "jos" else "left")
        for wait in waits:
            share = shares.get(wait.tenant)
            table.add_row(
                wait.pool,
                wait.band,
                wait.tenant,
                str(wait.waiting),
                f"{wait.oldest_wait_s:.1f} s",
                f"{share:.0%}" if share is not None else "-",
            )
        console.print(table)
    served = ", ".join(f"{tenant} {share:.0%}" for tenant, share in list(shares.items())[:10])
    console.print(f"share of weighted service, last minute: {served or 'none released'}")
