"""``chatq keys``: API keys for the gateway, each bound to a tenant and its quotas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from chatq.producers.tenants import KeyInfo, TenantSettings, TenantStore
from chatq.shared.errors import ChatqError
from chatq.shared.jobs import Priority
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import get_settings

keys = typer.Typer(
    help="Gateway API keys: create (bound to a tenant), list, revoke; set tenant quotas.",
    no_args_is_help=True,
)
console = Console()

Rpm = Annotated[int | None, typer.Option(min=1, help="Tenant's requests per minute.")]
TokensPerDay = Annotated[int | None, typer.Option(min=1, help="Tenant's tokens per UTC day.")]
Privacy = Annotated[
    bool | None, typer.Option(help="Mask personal data before it reaches a provider.")
]
Weight = Annotated[
    float | None,
    typer.Option(min=0.001, max=1000, help="Tenant's share of the provider limits (default 1)."),
]
Band = Annotated[
    Priority | None,
    typer.Option(help="The highest priority band the tenant's jobs may ride."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def _store() -> TenantStore:
    url = get_settings().effective_redis_url
    return TenantStore(sync_client(url))


def _apply_limits(
    store: TenantStore,
    tenant: str,
    rpm: int | None,
    tokens: int | None,
    privacy: bool | None,
    weight: float | None = None,
    band: Priority | None = None,
) -> TenantSettings:
    current = store.tenant(tenant)
    changes = {
        "rpm": rpm,
        "tokens_per_day": tokens,
        "privacy": privacy,
        "weight": weight,
        "band": band,
    }
    updated = current.model_copy(update={k: v for k, v in changes.items() if v is not None})
    store.set_tenant(tenant, updated)
    return updated


@keys.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    name: Annotated[str, typer.Option(help="A label, to tell keys apart.")] = "",
    rpm: Rpm = None,
    tokens_per_day: TokensPerDay = None,
    privacy: Privacy = None,
    as_json: AsJson = False,
) -> None:
    """Create a key; its secret is shown this once and never stored."""
    store = _store()
    secret, info = store.create_key(tenant, name)
    limits = _apply_limits(store, tenant, rpm, tokens_per_day, privacy)
    if as_json:
        print(json.dumps({**_key_json(info), "secret": secret, "limits": limits.model_dump()}))
        return
    console.print(f"key id:  {info.key_id}\ntenant:  {tenant}  ({_describe(limits)})")
    console.print(f"secret:  [bold]{secret}[/]  (shown once: keep it now)")


@keys.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
    as_json: AsJson = False,
) -> None:
    """List keys (ids and tenants; secrets are never shown again)."""
    store = _store()
    if as_json:
        rows = [
            {**_key_json(info), "limits": store.tenant(info.tenant).model_dump()}
            for info in store.list_keys(tenant)
        ]
        print(json.dumps(rows))
        return
    table = Table(title="API keys")
    table.add_column("key id", no_wrap=True)
    for column in ("tenant", "name", "created (UTC)", "state", "tenant limits"):
        table.add_column(column)
    for info in store.list_keys(tenant):
        state = "revoked" if info.revoked_at else "active"
        table.add_row(
            info.key_id,
            info.tenant,
            info.name,
            _when(info.created_at),
            state,
            _describe(store.tenant(info.tenant)),
        )
    console.print(table)


@keys.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    try:
        info = _store().revoke(key_id)
    except ChatqError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(1) from None
    console.print(f"revoked {info.key_id} (tenant {info.tenant})")


@keys.command("limits")
def limits(
    tenant: Annotated[str, typer.Argument(help="The tenant.")],
    rpm: Rpm = None,
    tokens_per_day: TokensPerDay = None,
    privacy: Privacy = None,
    weight: Weight = None,
    band: Band = None,
) -> None:
    """Show, or change, a tenant's quotas, scheduling weight and band, and privacy setting."""
    updated = _apply_limits(_store(), tenant, rpm, tokens_per_day, privacy, weight, band)
    console.print(f"{tenant}: {_describe(updated)}")


def _key_json(info: KeyInfo) -> dict[str, object]:
    """A key as scripts read it: its id, tenant, label, times and state (never a secret)."""
    return {**info.model_dump(), "state": "revoked" if info.revoked_at else "active"}


def _describe(limits: TenantSettings) -> str:
    rpm = f"{limits.rpm} rpm" if limits.rpm else "no rpm limit"
    tokens = f"{limits.tokens_per_day} tokens/day" if limits.tokens_per_day else "no token limit"
    privacy = f"privacy {'on' if limits.privacy else 'off'}"
    return f"{rpm}, {tokens}, weight {limits.weight:g}, band {limits.band.value}, {privacy}"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
