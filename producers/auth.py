"""Who is calling the gateway, and whether their tenant may send one more request.

A caller sends ``Authorization: Bearer <credential>``: an API key from ``chatq keys create``
(checked by its SHA-256 against Redis) or a JWT signed with the configured HS256 secret or
RS256 key (issuer and audience checked; the tenant comes from a claim). Quotas are per tenant:
requests per minute (a counter per clock minute) and tokens per UTC day (counted by workers
as jobs end).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from chatq.producers.tenants import KEY_PREFIX, TenantSettings, digest, key_info
from chatq.shared import keys
from chatq.shared.errors import AuthError, QuotaExceeded
from chatq.shared.settings import Settings
from redis.asyncio import Redis

OPEN_TENANT = None  # auth off: no tenant, no quota


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    tenant: str | None
    via: str  # "open", "api_key" or "jwt"
    key_id: str | None = None
    limits: TenantSettings = field(default_factory=TenantSettings)

    @property
    def privacy(self) -> bool:
        return self.limits.privacy


OPEN = Principal(OPEN_TENANT, "open")


class Authenticator:
    def __init__(self, settings: Settings, redis: Redis, *, clock: Any = time.time):
        self.settings = settings
        self.redis = redis
        self.clock = clock
        self._jwt_keys: list[tuple[Any, str]] = []
        if settings.jwt_secret is not None:
            self._jwt_keys.append((settings.jwt_secret.get_secret_value(), "HS256"))
        if settings.jwt_public_key_file is not None:
            self._jwt_keys.append((settings.jwt_public_key_file.read_text(), "RS256"))

    async def authenticate(self, authorization: str | None) -> Principal:
        if not self.settings.auth_required:
            return OPEN
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(
                "No credential: send 'Authorization: Bearer <API key or JWT>'.",
                code="missing_api_key",
            )
        if token.startswith(KEY_PREFIX):
            return await self._api_key(token)
        if token.count(".") == 2 and self._jwt_keys:
            return await self._jwt(token)
        raise AuthError("Incorrect API key provided.", code="invalid_api_key")

    async def _api_key(self, secret: str) -> Principal:
        data = await self.redis.hgetall(keys.api_key(digest(secret)))
        if not data:
            raise AuthError("Incorrect API key provided.", code="invalid_api_key")
        info = key_info(data)
        if info.revoked_at is not None:
            raise AuthError("This API key has been revoked.", code="revoked_api_key")
        return Principal(info.tenant, "api_key", info.key_id, await self._limits(info.tenant))

    async def _jwt(self, token: str) -> Principal:
        claims: dict[str, Any] | None = None
        problem = "The bearer token is not valid."
        for key, algorithm in self._jwt_keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.settings.jwt_audience,
                    issuer=self.settings.jwt_issuer,
                    options={
                        "require": ["exp"],
                        "verify_aud": self.settings.jwt_audience is not None,
                    },
                    leeway=5,
                )
                break
            except jwt.ExpiredSignatureError:
                raise AuthError("The bearer token has expired.", code="expired_token") from None
            except jwt.InvalidAudienceError:
                problem = "The bearer token is for another audience."
            except jwt.InvalidIssuerError:
                problem = "The bearer token comes from an issuer this gateway does not trust."
            except jwt.PyJWTError:
                continue
        if claims is None:
            raise AuthError(problem, code="invalid_token")
        tenant = claims.get(self.settings.jwt_tenant_claim) or claims.get("sub")
        if not isinstance(tenant, str) or not tenant:
            claim = self.settings.jwt_tenant_claim
            raise AuthError(
                f"The bearer token names no tenant ('{claim}' or 'sub').", code="invalid_token"
            )
        return Principal(tenant, "jwt", None, await self._limits(tenant))

    async def _limits(self, tenant: str) -> TenantSettings:
        return TenantSettings.from_hash(await self.redis.hgetall(keys.tenant_key(tenant)))

    async def admit(self, principal: Principal) -> None:
        """Counts one request against the tenant's quotas; raises ``QuotaExceeded`` (429, with
        the wait) when a quota is spent."""
        limits, tenant = principal.limits, principal.tenant
        if tenant is None:
            return
        now = self.clock()
        if limits.tokens_per_day is not None:
            used = int(await self.redis.get(keys.quota_tokens_key(tenant, now)) or 0)
            if used >= limits.tokens_per_day:
                midnight = (int(now) // 86400 + 1) * 86400
                raise QuotaExceeded(
                    f"Tenant '{tenant}' has used its {limits.tokens_per_day} tokens for today "
                    "(UTC).",
                    retry_after=midnight - now,
                )
        if limits.rpm is not None:
            minute = int(now // 60)
            key = keys.quota_rpm_key(tenant, now)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, 120)
                count, _ = await pipe.execute()
            if count > limits.rpm:
                raise QuotaExceeded(
                    f"Tenant '{tenant}' is over its limit of {limits.rpm} requests per minute.",
                    retry_after=(minute + 1) * 60 - now,
                )
