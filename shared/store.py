"""The job record and event stream in Redis: the one place job state is read and written."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from redis import Redis

from shared import keys
from shared.errors import JobNotFound, JobTimeout
from shared.jobs import ChatJob, ChatResult, JobError, JobStatus, Timings
from shared.protocol import DeltaEvent, EndEvent, Event, decode_event, encode_delta
from shared.scripts import ScriptCall, lua
from shared.settings import Settings
from shared.task_messages import chat_message

MAX_BLOCK_MS = 2_000  # re-check the caller's deadline at least this often while blocked
# redis-py (6 and later) caps a client's connection pool at 100 and raises "Too many
# connections" past it; a worker running hundreds of jobs in threads, or a gateway holding
# hundreds of open streams, needs one connection each. Connections are opened on demand.
REDIS_MAX_CONNECTIONS = 10_000
SOCKET_TIMEOUT_S = 10.0  # well above MAX_BLOCK_MS: a blocked XREAD is not a dead server
# How chatq's own Redis clients (sync and asyncio) are made.
CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_timeout": SOCKET_TIMEOUT_S,
    "max_connections": REDIS_MAX_CONNECTIONS,
}
DEFAULT_LEASE_S = 30.0  # a worker's claim on a job lapses this long after its last renewal
DEFAULT_LOST_JOB_CHECK_S = 60.0  # a job not ended is checked for a lost message this often


@dataclass(frozen=True)
class Claimed:
    """The job is this worker's now, on its ``attempt``-th run."""

    attempt: int


@dataclass(frozen=True)
class AlreadyEnded:
    """The job ended before this claim (a redelivery, a cancel): nothing to do."""

    status: JobStatus


@dataclass(frozen=True)
class Busy:
    """Another worker holds a live claim on the job; look again after ``retry_in_s``."""

    retry_in_s: float


Claim = Claimed | AlreadyEnded | Busy


class JobRecord(BaseModel):
    """What an operator or caller can see of a job at any moment."""

    job_id: str
    status: JobStatus
    model: str | None = None
    queue: str | None = None
    attempts: int = 0
    deferrals: int = 0
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    tenant: str | None = None
    worker: str | None = None  # the node that claimed it last (worker1@host)
    webhook_url: str | None = None
    webhook: str | None = None  # how its delivery went: delivered, retrying or failed
    result: ChatResult | None = None

    @classmethod
    def from_hash(cls, job_id: str, data: dict[str, str]) -> JobRecord:
        result = data.get("result")
        return cls(
            job_id=job_id,
            status=JobStatus(data["status"]),
            model=data.get("model"),
            queue=data.get("queue"),
            attempts=int(data.get("attempts", 0)),
            deferrals=int(data.get("deferrals", 0)),
            created_at=_float(data.get("created_at")),
            started_at=_float(data.get("started_at")),
            finished_at=_float(data.get("finished_at")),
            tenant=data.get("tenant"),
            worker=data.get("worker") or None,
            webhook_url=data.get("webhook_url"),
            webhook=data.get("webhook"),
            result=ChatResult.model_validate_json(result) if result else None,
        )


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def queued_fields(job: ChatJob, queue: str, *, payload: str | None = None) -> dict[str, Any]:
    """The record of a job just accepted into ``queue``, with its message's payload (dropped
    when the job ends) for sending it again should that message be lost."""
    fields: dict[str, Any] = {
        "status": JobStatus.queued.value,
        "model": job.request.model,
        "queue": queue,
        "created_at": job.created_at,
        "payload": payload if payload is not None else job.model_dump_json(exclude_none=True),
    }
    if job.tenant is not None:
        fields["tenant"] = job.tenant
    if job.webhook_url is not None:
        fields["webhook_url"] = job.webhook_url
    return fields


def create_keys(job_id: str, queue: str) -> list[str]:
    return [keys.job_key(job_id), keys.PENDING, queue]


def create_args(job: ChatJob, queue: str, check_at: float, *, send: bool = True) -> list[Any]:
    """The arguments of create_job.lua: the record, and (if ``send``) the job's message."""
    body = job.model_dump(mode="json", exclude_none=True)
    fields = queued_fields(job, queue, payload=json.dumps(body))
    message = chat_message(body, queue) if send else ""
    return [check_at, job.id, message, *(x for pair in fields.items() for x in pair)]


def finish_keys(job_id: str, share_key: str | None = None) -> list[str]:
    shared = share_key or job_id  # unused unless the job led a shared call
    return [
        keys.job_key(job_id),
        keys.events_key(job_id),
        keys.DEAD_LETTERS,
        keys.DEAD_LETTER_JOBS,
        keys.answer_key(shared),
        keys.PENDING,
    ]


def finish_args(
    result: ChatResult,
    now: float,
    result_ttl_s: int,
    events_ttl_s: int,
    must_exist: bool,
    dead_letter: ChatJob | None = None,
    share_key: str | None = None,
    cache_ttl_s: int = 0,
) -> list[Any]:
    """The arguments of finish_job.lua for ending a job with ``result``."""
    if not result.status.is_terminal:
        raise ValueError(f"a job ends with a terminal status, not {result.status}")
    letter = ""
    if dead_letter is not None and result.status is JobStatus.failed:
        letter = DeadLetterEntry(job=dead_letter, result=result, failed_at=now).model_dump_json(
            exclude_none=True
        )
    return [
        result.status.value,
        result.to_json(),
        now,
        result_ttl_s,
        events_ttl_s,
        "1" if must_exist else "0",
        letter,
        result.job_id,
        "1" if share_key else "0",
        cache_ttl_s,
    ]


class DeadLetterEntry(BaseModel):
    """A job that failed for good, kept until it is retried or purged."""

    job: ChatJob
    result: ChatResult
    failed_at: float


def cancelled_result(job_id: str, reason: str, now: float) -> ChatResult:
    return ChatResult(
        job_id=job_id,
        status=JobStatus.cancelled,
        error=JobError(type="cancelled", code="job_cancelled", message=reason),
        timings=Timings(finished_at=now),
    )


class JobStore:
    """Reads and writes job records and event streams on a (synchronous) Redis client."""

    def __init__(
        self,
        redis: Redis,
        *,
        result_ttl_s: int,
        events_ttl_s: int,
        lost_job_check_s: float = DEFAULT_LOST_JOB_CHECK_S,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = redis
        self.result_ttl_s = result_ttl_s
        self.events_ttl_s = events_ttl_s
        self.lost_job_check_s = lost_job_check_s
        self.clock = clock
        self._create = redis.register_script(lua("shared", "create_job.lua"))
        self._start = redis.register_script(lua("shared", "start_job.lua"))
        self._renew = redis.register_script(lua("shared", "renew_leases.lua"))
        self._finish = redis.register_script(lua("shared", "finish_job.lua"))
        self._defer = redis.register_script(lua("shared", "defer_job.lua"))

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | None = None) -> JobStore:
        client = redis or Redis.from_url(settings.effective_redis_url, **CLIENT_OPTIONS)
        return cls(
            client,
            result_ttl_s=settings.result_ttl_s,
            events_ttl_s=settings.events_ttl_s,
            lost_job_check_s=settings.lost_job_check_s,
        )

    # -- producer side -------------------------------------------------------------------------

    def create(self, job: ChatJob, queue: str) -> bool:
        """Records a newly accepted job and queues its message, in one step; False if its id
        was taken (then nothing is sent)."""
        check_at = self.clock() + self.lost_job_check_s
        return bool(
            self._create(
                keys=create_keys(job.id, queue),
                args=create_args(job, queue, check_at),
            )
        )

    def send(self, job: dict[str, Any], queue: str) -> None:
        """Queues a message for a job already recorded (``job`` is the ``ChatJob`` as JSON):
        to send it again, or to retry a dead letter."""
        self.redis.lpush(queue, chat_message(job, queue))

    def get(self, job_id: str) -> JobRecord:
        data = self.redis.hgetall(keys.job_key(job_id))
        if not data:
            raise JobNotFound(f"No job with id '{job_id}' (unknown, or its record expired).")
        return JobRecord.from_hash(job_id, data)

    def cancel(self, job_id: str, reason: str = "Cancelled by the caller.") -> bool:
        """Cancels a job that has not ended. False if it had already ended."""
        result = cancelled_result(job_id, reason, self.clock())
        return self.finish(result, must_exist=True)

    def events(self, job_id: str, *, timeout: float, since: str = "0-0") -> Iterator[Event]:
        """Every event of a job from ``since`` on, ending with its end event."""
        deadline = time.monotonic() + timeout
        stream = keys.events_key(job_id)
        last_id = since
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                raise JobTimeout(f"Job '{job_id}' did not finish within {timeout:g} s.")
            reply = self.redis.xread({stream: last_id}, block=min(remaining_ms, MAX_BLOCK_MS))
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    event = decode_event(fields)
                    yield event
                    if isinstance(event, EndEvent):
                        return

    def wait(self, job_id: str, *, timeout: float) -> ChatResult:
        """The job's result, waiting up to ``timeout`` seconds for it to end."""
        record = self.get(job_id)
        if record.result is not None and record.status.is_terminal:
            return record.result
        for event in self.events(job_id, timeout=timeout):
            if isinstance(event, EndEvent):
                return event.result
        raise AssertionError("unreachable: events() ends with an EndEvent or raises")

    # -- worker side ---------------------------------------------------------------------------

    def start(self, job: ChatJob, *, lease_s: float = DEFAULT_LEASE_S) -> Claim:
        """Claims the job for this worker for ``lease_s`` (renew with ``renew_leases``)."""
        return self.started(self.claim(job, lease_s=lease_s))

    def claim(self, job: ChatJob, *, lease_s: float = DEFAULT_LEASE_S, worker: str = "") -> Any:
        """Sends the claim of ``start`` (read its reply with ``started``)."""
        call = self.claim_call(job, lease_s=lease_s, worker=worker)
        return self._start(keys=call.keys, args=call.args)

    def claim_call(self, job: ChatJob, *, lease_s: float, worker: str) -> ScriptCall:
        """The claim of ``start`` as a script call, to chain with others in one round trip."""
        args = [
            self.clock(),
            self.result_ttl_s,
            job.request.model,
            job.created_at,
            lease_s,
            worker,
            job.id,
        ]
        return ScriptCall(
            lua("shared", "start_job.lua"), [keys.job_key(job.id), keys.PENDING], args
        )

    @staticmethod
    def started(reply: Any) -> Claim:
        """The claim that ``start_job.lua`` replied."""
        kind, value = reply
        if kind == "ended":
            return AlreadyEnded(JobStatus(value))
        if kind == "busy":
            return Busy(float(value))
        return Claimed(int(value))

    def renew_leases(self, job_ids: Iterable[str], *, lease_s: float = DEFAULT_LEASE_S) -> int:
        """Extends this worker's claims on the jobs it is running."""
        ids = list(job_ids)
        if not ids:
            return 0
        job_keys = [keys.PENDING, *(keys.job_key(job_id) for job_id in ids)]
        return int(self._renew(keys=job_keys, args=[self.clock() + lease_s, *ids]))

    def defer(self, job_id: str, delay_s: float) -> bool:
        """Puts a job aside for ``delay_s``: it waits in Redis, not in a worker, and
        ``workers.recovery`` sends it again when due. False if its record keeps no payload
        to send it from (then the caller must retry the message itself)."""
        now = self.clock()
        return bool(
            self._defer(
                keys=[keys.job_key(job_id), keys.DEFERRED, keys.PENDING],
                args=[now + delay_s, now + delay_s + self.lost_job_check_s, job_id],
            )
        )

    def count_tenant_tokens(self, tenant: str, tokens: int, now: float) -> None:
        """Adds tokens a tenant's job used to its daily quota counter."""
        key = keys.quota_tokens_key(tenant, now)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(key, tokens)
            pipe.expire(key, 2 * 86400)
            pipe.execute()

    def published_chunks(self, job_id: str) -> list[dict[str, Any]]:
        """The chunks already streamed to consumers (by an earlier, interrupted attempt)."""
        entries = self.redis.xrange(keys.events_key(job_id))
        return [
            e.chunk for e in map(decode_event, (f for _, f in entries)) if isinstance(e, DeltaEvent)
        ]

    def append_delta(
        self, job_id: str, chunk: dict[str, Any] | str, *, first: bool = False
    ) -> None:
        """Appends one ``chat.completion.chunk`` (a dict, or its JSON) to the job's stream."""
        self.append_deltas(job_id, [chunk], first=first)

    def append_deltas(
        self, job_id: str, chunks: Sequence[dict[str, Any] | str], *, first: bool = False
    ) -> None:
        """Appends chunks to the job's stream in one round trip; the first of a stream also
        sets its TTL and the job's ``first_token_at``."""
        stream = keys.events_key(job_id)
        if not first and len(chunks) == 1:
            self.redis.xadd(stream, encode_delta(chunks[0]))
            return
        pipe = self.redis.pipeline(transaction=False)
        for chunk in chunks:
            pipe.xadd(stream, encode_delta(chunk))
        if first:
            pipe.expire(stream, self.events_ttl_s)
            pipe.hset(keys.job_key(job_id), "first_token_at", self.clock())
        pipe.execute()

    def finish(
        self,
        result: ChatResult,
        *,
        must_exist: bool = False,
        dead_letter: ChatJob | None = None,
        share_key: str | None = None,
        cache_ttl_s: int = 0,
    ) -> bool:
        """Ends the job with ``result`` unless it already ended: True if this call ended it.

        In the same atomic step: a failed job given as ``dead_letter`` is filed as a dead
        letter; a job that led the call for identical requests (``share_key``) frees the key
        and, if done, caches its answer for ``cache_ttl_s``.
        """
        reply = self._finish(
            keys=finish_keys(result.job_id, share_key),
            args=finish_args(
                result,
                self.clock(),
                self.result_ttl_s,
                self.events_ttl_s,
                must_exist,
                dead_letter,
                share_key,
                cache_ttl_s,
            ),
        )
        if reply == -1:
            raise JobNotFound(f"No job with id '{result.job_id}' (unknown, or its record expired).")
        return reply == 1
