"""Identical requests share one provider call, and good answers are cached.

Requests are identical when model, normalised messages and generation parameters match
(``request_key``); whether they stream does not matter. Across every worker, the first job with
a key leads: it calls the provider. Jobs with the same key that arrive while it runs follow it:
they copy its deltas and answer into their own streams. Afterwards, the answer is served from a
Redis cache until it expires, with a small in-process LRU in front (for up to 30 s). Requests
sampled with temperature > 0 share only when the caller allows it (``coalesce=True``).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from chatq.shared.job_state import answers
from chatq.shared.jobs import CHATQ_FIELDS, ChatJob, ChatRequest, ChatResult
from chatq.shared.scripts import ScriptCall
from redis import Redis

KEY_EXCLUDED = CHATQ_FIELDS | {"stream", "stream_options", "user"}
# How long a process keeps an answer in its own LRU: hot keys skip Redis, while an answer
# removed from Redis (its user erased) is served from memory for at most this long.
LRU_TTL_S = 30.0
# Part of every key: raised when a cached answer's shape or the key's encoding changes, so
# old entries go unread (5: keys encoded by orjson).
ANSWER_FORMAT = 5


def request_key(request: ChatRequest) -> str | None:
    """The key identical requests share, or None if this one must not share its answer."""
    deterministic = not request.temperature
    if not (deterministic if request.coalesce is None else request.coalesce):
        return None
    return identity(request)


def identity(request: ChatRequest) -> str:
    """A digest that identical requests (as defined above) have in common."""
    body = request.model_dump(mode="json", exclude_none=True, exclude=set(KEY_EXCLUDED))
    body["messages"] = [_normalised(m) for m in body["messages"]]
    canonical = orjson.dumps([ANSWER_FORMAT, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=20).hexdigest()


def embedding_key(job: ChatJob) -> str | None:
    """The key identical embeddings requests share (the same model, inputs and dimensions):
    embeddings are deterministic, so they share and cache unless the request says not to."""
    if job.embedding is None or job.request.cache is False or job.request.coalesce is False:
        return None
    asked = [ANSWER_FORMAT, "embeddings", job.request.model, job.embedding.model_dump()]
    canonical = orjson.dumps(asked, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=20).hexdigest()


def _normalised(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": " ".join(content.split())}
    return message


@dataclass(frozen=True)
class Decision:
    kind: Literal["cached", "follow", "lead"]
    cached: ChatResult | None = None
    leader: str | None = None


LEAD = Decision("lead")


class Coalescer:
    def __init__(
        self,
        redis: Redis,
        *,
        cache_ttl_s: int,
        lease_s: float,
        lru_size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.redis = redis
        self.cache_ttl_s = cache_ttl_s
        self.lease_ms = int(lease_s * 1000)
        self.lru_size = lru_size
        self.clock = clock
        self._lru: OrderedDict[str, tuple[float, ChatResult]] = OrderedDict()
        self._scripts: dict[str, Any] = {}

    def join(self, key: str, job_id: str, *, use_cache: bool) -> Decision:
        """How the job gets its answer: cached, following a call in flight, or leading one."""
        if use_cache and (hit := self._lru_get(key)) is not None:
            answers.count("cache_hits").run(self.redis, self._scripts)
            return Decision("cached", cached=hit)
        call = self.join_call(key, job_id, use_cache=use_cache)
        return self.decision(key, call.run(self.redis, self._scripts))

    def join_call(self, key: str, job_id: str, *, use_cache: bool) -> ScriptCall:
        """The Redis part of ``join`` as a script call (read its reply with ``decision``).
        A lead that caches its answer lasts as long as the cache keeps it."""
        lead_ms = max(self.lease_ms, self.cache_ttl_s * 1000) if use_cache else self.lease_ms
        return answers.join(key, job_id, lead_ms=lead_ms, use_cache=use_cache, now=time.time())

    def decision(self, key: str, reply: Any) -> Decision:
        kind, value = reply
        if kind == "cached":
            result = ChatResult.model_validate_json(value)
            self._lru_put(key, result)
            return Decision("cached", cached=result)
        if kind == "follow":
            return Decision("follow", leader=value)
        return LEAD

    def has_local(self, key: str) -> bool:
        """Whether this process's LRU holds a live answer for ``key``."""
        entry = self._lru.get(key)
        return entry is not None and entry[0] >= self.clock()

    def remember(self, key: str, result: ChatResult) -> None:
        """Keeps a leader's answer in this process's LRU (Redis gets it as the job ends)."""
        self._lru_put(key, result)

    def free(self, key: str, job_id: str) -> None:
        """Frees the key a job led without an answer to share. (A job that ends normally
        frees it or leaves its answer cached in its finishing step; this is for the other
        ways out.)"""
        answers.free(key, job_id).run(self.redis, self._scripts)

    def record_saving(self, tokens: int) -> None:
        if tokens:
            answers.count("tokens_saved", tokens).run(self.redis, self._scripts)

    def _lru_get(self, key: str) -> ChatResult | None:
        entry = self._lru.get(key)
        if entry is None:
            return None
        expires, result = entry
        if expires < self.clock():
            del self._lru[key]
            return None
        self._lru.move_to_end(key)
        return result

    def _lru_put(self, key: str, result: ChatResult) -> None:
        self._lru[key] = (self.clock() + min(self.cache_ttl_s, LRU_TTL_S), result)
        self._lru.move_to_end(key)
        while len(self._lru) > self.lru_size:
            self._lru.popitem(last=False)
