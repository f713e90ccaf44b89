"""Conversations kept in Redis by ``session_id``, and what a tenant keeps about its users.

A session is a summary of its older turns plus its recent turns verbatim. Producers read it to
build each request (see ``chatq.producers.sessions``); workers append the new turn and the answer
when a job is done. Every use renews the session's TTL: short or long, as the caller chose.
Everything is scoped by tenant, and indexed by user so that erasing a user is complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from chatq.shared import keys
from chatq.shared.errors import NotFound, short
from chatq.shared.job_state import JobCommands
from chatq.shared.jobs import ChatJob, ChatMessage, ChatResult, Role
from chatq.shared.settings import Settings
from pydantic import BaseModel
from redis import Redis


class SessionNotFound(NotFound):
    code = "session_not_found"


class Session(BaseModel):
    id: str
    summary: str = ""
    summarised: int = 0  # turns folded into the summary so far
    turns: list[ChatMessage] = []
    user: str | None = None
    ttl_s: int = 0
    updated_at: float | None = None


class SessionStore:
    def __init__(self, redis: Redis, settings: Settings, *, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.settings = settings
        self.clock = clock

    def ttl_for(self, kind: str | None) -> int:
        long = kind == "long"
        return self.settings.session_long_ttl_s if long else self.settings.session_short_ttl_s

    def load(self, tenant: str | None, session_id: str) -> Session:
        """The session (empty if new or expired)."""
        head = self.redis.hgetall(keys.session_key(tenant, session_id))
        turns = self.redis.lrange(keys.session_turns_key(tenant, session_id), 0, -1)
        return Session(
            id=session_id,
            summary=head.get("summary", ""),
            summarised=int(head.get("summarised", 0)),
            turns=[ChatMessage.model_validate_json(t) for t in turns],
            user=head.get("user") or None,
            ttl_s=int(head.get("ttl_s", 0)),
            updated_at=float(head["updated_at"]) if head.get("updated_at") else None,
        )

    def get(self, tenant: str | None, session_id: str) -> Session:
        if not self.redis.exists(keys.session_key(tenant, session_id)):
            raise SessionNotFound(f"No session with id {short(session_id)}.", param="session_id")
        return self.load(tenant, session_id)

    def touch(
        self, tenant: str | None, session_id: str, *, ttl_kind: str | None, user: str | None
    ) -> None:
        """Creates the session if new and renews its TTL; links it to its user."""
        head = keys.session_key(tenant, session_id)
        ttl = self.ttl_for(ttl_kind) if ttl_kind else int(self.redis.hget(head, "ttl_s") or 0)
        ttl = ttl or self.ttl_for(None)
        fields: dict[str, Any] = {"ttl_s": ttl, "updated_at": self.clock()}
        if user:
            fields["user"] = user
        with self.redis.pipeline() as pipe:
            pipe.hset(head, mapping=fields)
            pipe.expire(head, ttl)
            pipe.expire(keys.session_turns_key(tenant, session_id), ttl)
            if user:
                pipe.sadd(keys.user_key(tenant, user, "sessions"), session_id)
            pipe.execute()

    def append(self, tenant: str | None, session_id: str, messages: Iterable[ChatMessage]) -> None:
        turns = [m.model_dump_json(exclude_unset=True) for m in messages]
        if not turns:
            return
        ttl = int(self.redis.hget(keys.session_key(tenant, session_id), "ttl_s") or 0)
        ttl = ttl or self.ttl_for(None)
        with self.redis.pipeline() as pipe:
            pipe.rpush(keys.session_turns_key(tenant, session_id), *turns)
            pipe.hset(keys.session_key(tenant, session_id), "updated_at", self.clock())
            pipe.expire(keys.session_turns_key(tenant, session_id), ttl)
            pipe.expire(keys.session_key(tenant, session_id), ttl)
            pipe.execute()

    def branch(self, tenant: str | None, source: str, target: str, *, ttl_kind: str) -> Session:
        """Starts session ``target`` as a copy of ``source`` (its summary and turns): the
        conversation so far, continued apart from any other continuation of it."""
        session = self.load(tenant, source)
        head = keys.session_key(tenant, target)
        with self.redis.pipeline() as pipe:
            pipe.hset(head, mapping={"summary": session.summary, "summarised": session.summarised})
            if session.turns:
                turns = [m.model_dump_json(exclude_unset=True) for m in session.turns]
                pipe.rpush(keys.session_turns_key(tenant, target), *turns)
            pipe.execute()
        self.touch(tenant, target, ttl_kind=ttl_kind, user=session.user)
        return session

    def record_answer(self, job: ChatJob, result: ChatResult) -> None:
        """Appends a finished job's new messages and its answer to its session."""
        session_id = job.request.session_id
        first = result.completion.first if result.completion else None
        if session_id is None or job.session_new_from is None or first is None:
            return
        new = [m for m in job.request.messages[job.session_new_from :] if m.role is not Role.system]
        # Reasoning is not sent back: providers that produce it refuse it in a request.
        said = {k: v for k, v in first.message.wire().items() if k != "reasoning_content"}
        answer = ChatMessage.model_validate({**said, "role": Role.assistant.value})
        self.append(job.tenant, session_id, [*new, answer])

    def fold(self, tenant: str | None, session_id: str, summary: str, turns: int) -> None:
        """Replaces the oldest ``turns`` turns by ``summary`` (which covers them)."""
        head = keys.session_key(tenant, session_id)
        with self.redis.pipeline() as pipe:
            pipe.ltrim(keys.session_turns_key(tenant, session_id), turns, -1)
            pipe.hset(head, "summary", summary)
            pipe.hincrby(head, "summarised", turns)
            pipe.execute()

    def delete(self, tenant: str | None, session_id: str) -> bool:
        removed = self.redis.delete(
            keys.session_key(tenant, session_id), keys.session_turns_key(tenant, session_id)
        )
        return bool(removed)


class UserStore:
    """What a tenant keeps about one of its users, and the erasure of all of it."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def profile(self, tenant: str | None, user: str) -> dict[str, str]:
        return self.redis.hgetall(keys.user_key(tenant, user, "profile"))

    def set_profile(self, tenant: str | None, user: str, attributes: dict[str, str]) -> None:
        key = keys.user_key(tenant, user, "profile")
        with self.redis.pipeline() as pipe:
            pipe.delete(key)
            if attributes:
                pipe.hset(key, mapping=attributes)
            pipe.execute()

    def note_job(self, tenant: str | None, user: str, job_id: str) -> None:
        self.redis.sadd(keys.user_key(tenant, user, "jobs"), job_id)

    def note_cache_key(self, tenant: str | None, user: str, cache_key: str) -> None:
        self.redis.sadd(keys.user_key(tenant, user, "cache"), cache_key)

    def erase(self, tenant: str | None, user: str) -> dict[str, int]:
        """Deletes the user's sessions, profile, jobs (records, streams and dead letters) and
        the answers their jobs put in the cache. Returns how many of each went."""
        sessions = self.redis.smembers(keys.user_key(tenant, user, "sessions"))
        jobs = self.redis.smembers(keys.user_key(tenant, user, "jobs"))
        cached = self.redis.smembers(keys.user_key(tenant, user, "cache"))
        doomed = [
            keys.user_key(tenant, user, part) for part in ("profile", "sessions", "jobs", "cache")
        ]
        for session_id in sessions:
            doomed += [
                keys.session_key(tenant, session_id),
                keys.session_turns_key(tenant, session_id),
            ]
        with self.redis.pipeline() as pipe:
            for key in doomed:
                pipe.delete(key)
            for command in JobCommands.erase(jobs, cached):
                command.run(pipe, {})
            replies = pipe.execute()
        dead_letters = replies[len(doomed)] if jobs else 0
        return {
            "sessions": len(sessions),
            "jobs": len(jobs),
            "cached_answers": len(cached),
            "dead_letters": dead_letters,
        }


def profile_message(profile: dict[str, str]) -> ChatMessage | None:
    """The system message that tells the model about the user, if there is a profile."""
    if not profile:
        return None
    facts = "; ".join(f"{k}: {v}" for k, v in sorted(profile.items()))
    return ChatMessage(role=Role.system, content=f"About the user you are talking to: {facts}.")
