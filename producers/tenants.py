"""Tenants and their API keys, in Redis. Keys are stored as SHA-256 digests only: the secret
is shown once, when created, and can be checked but never read back."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from chatq.shared import keys
from chatq.shared.errors import NotFound
from chatq.shared.jobs import Priority
from pydantic import BaseModel, Field
from redis import Redis

KEY_PREFIX = "cq-"


class TenantSettings(BaseModel):
    """What a tenant may use, and how its requests are treated."""

    rpm: int | None = Field(None, ge=1, description="Requests per minute; None: no limit.")
    tokens_per_day: int | None = Field(None, ge=1, description="Tokens per UTC day.")
    privacy: bool = Field(True, description="Mask personal data before it reaches a provider.")
    weight: float = Field(
        1.0, gt=0, le=1000, description="Its share of the provider's limits, against others'."
    )
    band: Priority = Field(
        Priority.interactive,
        description="The highest priority band its jobs may ride: bulk keeps them all bulk.",
    )

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> TenantSettings:
        return cls(
            rpm=int(data["rpm"]) if data.get("rpm") else None,
            tokens_per_day=int(data["tokens_per_day"]) if data.get("tokens_per_day") else None,
            privacy=data.get("privacy", "1") == "1",
            weight=float(data.get("weight") or 1),
            band=Priority(data.get("band") or Priority.interactive.value),
        )

    def to_hash(self) -> dict[str, str]:
        """As stored; the scheduler reads ``weight`` from it too (``schedule_lib.lua``)."""
        return {
            "rpm": str(self.rpm or ""),
            "tokens_per_day": str(self.tokens_per_day or ""),
            "privacy": "1" if self.privacy else "0",
            "weight": repr(self.weight),
            "band": self.band.value,
        }


class KeyInfo(BaseModel):
    key_id: str
    tenant: str
    name: str = ""
    created_at: float
    revoked_at: float | None = None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_for(secret_digest: str) -> str:
    return "key_" + secret_digest[:12]


class TenantStore:
    def __init__(self, redis: Redis):
        self.redis = redis

    def set_tenant(self, tenant: str, settings: TenantSettings) -> None:
        self.redis.hset(keys.tenant_key(tenant), mapping=settings.to_hash())

    def tenant(self, tenant: str) -> TenantSettings:
        return TenantSettings.from_hash(self.redis.hgetall(keys.tenant_key(tenant)))

    def create_key(self, tenant: str, name: str = "") -> tuple[str, KeyInfo]:
        """A new API key for ``tenant``: the secret (shown once) and its description."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        hashed = digest(secret)
        info = KeyInfo(key_id=key_id_for(hashed), tenant=tenant, name=name, created_at=time.time())
        if not self.redis.exists(keys.tenant_key(tenant)):
            self.set_tenant(tenant, TenantSettings())
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.api_key(hashed), mapping=_key_hash(info))
            pipe.hset(keys.API_KEYS, info.key_id, hashed)
            pipe.execute()
        return secret, info

    def list_keys(self, tenant: str | None = None) -> list[KeyInfo]:
        found = []
        for hashed in self.redis.hvals(keys.API_KEYS):
            data = self.redis.hgetall(keys.api_key(hashed))
            if data and (tenant is None or data.get("tenant") == tenant):
                found.append(key_info(data))
        return sorted(found, key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> KeyInfo:
        hashed = self.redis.hget(keys.API_KEYS, key_id)
        if not hashed:
            raise NotFound(f"No API key with id '{key_id}'.")
        self.redis.hset(keys.api_key(hashed), "revoked_at", time.time())
        return key_info(self.redis.hgetall(keys.api_key(hashed)))


def _key_hash(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "tenant": info.tenant,
        "name": info.name,
        "created_at": info.created_at,
    }


def key_info(data: dict[str, str]) -> KeyInfo:
    revoked = data.get("revoked_at")
    return KeyInfo(
        key_id=data["key_id"],
        tenant=data["tenant"],
        name=data.get("name", ""),
        created_at=float(data["created_at"]),
        revoked_at=float(revoked) if revoked else None,
    )
