"""The requests of stored responses (``store: true``), by tenant and id, kept as long as
their jobs' records: what ``GET /v1/responses/{id}`` shows beside the job's outcome."""

from __future__ import annotations

import json

from chatq.producers.responses_format import ResponsesRequest
from chatq.shared import keys
from chatq.shared.errors import NotFound, short
from redis.asyncio import Redis


class ResponseNotFound(NotFound):
    code = "response_not_found"


class StoredResponse:
    def __init__(self, request: ResponsesRequest, created_at: float):
        self.request = request
        self.created_at = created_at


class ResponseStore:
    def __init__(self, redis: Redis, ttl_s: int):
        self.redis = redis
        self.ttl_s = ttl_s

    async def save(
        self, tenant: str | None, response_id: str, request: ResponsesRequest, created_at: float
    ) -> None:
        record = {"request": request.model_dump(mode="json"), "created_at": created_at}
        await self.redis.set(_key(tenant, response_id), json.dumps(record), ex=self.ttl_s)

    async def load(self, tenant: str | None, response_id: str, *, param: str) -> StoredResponse:
        """The stored response; ``ResponseNotFound`` (naming ``param``) if none is the
        tenant's."""
        raw = await self.redis.get(_key(tenant, response_id))
        if raw is None:
            raise ResponseNotFound(f"No response with id {short(response_id)}.", param=param)
        record = json.loads(raw)
        return StoredResponse(
            ResponsesRequest.model_validate(record["request"]), record["created_at"]
        )

    async def delete(self, tenant: str | None, response_id: str) -> bool:
        return bool(await self.redis.delete(_key(tenant, response_id)))


def _key(tenant: str | None, response_id: str) -> str:
    return keys.response_key(tenant, response_id)
