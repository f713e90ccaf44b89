"""A job's state in Redis, as commands: every key of a job is built here, with the command
that reads or writes it and the parser of its reply. Nothing here does I/O: the sync store
(``chatq.shared.store``) and the asyncio one (``chatq.shared.async_store``) send what this
builds, the way redis-py and httpx keep one core under both kinds of client.

The keys (``chatq.shared.keys``): the record (hash), the events (stream), the pending set, the
deferred set, dead letters, and the shared answers of identical requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Self, TypedDict, Unpack

import orjson
from chatq.shared import keys
from chatq.shared.broker import chat_message
from chatq.shared.errors import JobNotFound, JobTimeout, QueueUnavailable, QuotaExceeded
from chatq.shared.job_state import scheduling
from chatq.shared.jobs import ChatJob, ChatResult, JobError, JobStatus, Timings
from chatq.shared.protocol import EndEvent, Event, decode_event, encode_delta
from chatq.shared.redis_clients import MAX_BLOCK_MS
from chatq.shared.scripts import ScriptCall, lua
from chatq.shared.settings import SchedulerPolicy, Settings
from pydantic import BaseModel

DEFAULT_LEASE_S = 30.0  # a worker's claim on a job lapses this long after its last renewal
DEFAULT_LOST_JOB_CHECK_S = 30.0  # a job not ended is checked for a lost message this often


@dataclass(frozen=True)
class Command:
    """One Redis command, by its redis-py method: sent as is on a sync or asyncio client."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def run(self, redis: Any, scripts: dict[str, Any]) -> Any:
        return getattr(redis, self.method)(*self.args, **self.kwargs)


def pipelined(redis: Any, commands: Iterable[Command | ScriptCall]) -> list[Any]:
    """Sends commands in one round trip (a plain pipeline on a sync client); their replies."""
    with redis.pipeline(transaction=False) as pipe:
        for command in commands:
            command.run(pipe, {})
        return list(pipe.execute())


def check_time(at: float) -> int:
    """A score of the pending set: whole seconds, rounded up. Redis keeps a small sorted set
    as a list it scans on each insert, parsing every float score it passes; integer scores
    make that scan 3-4 times cheaper (a job's ZADD on create: 26 -> 7 us)."""
    return math.ceil(at)


async def pipelined_async(redis: Any, commands: Iterable[Command | ScriptCall]) -> list[Any]:
    """``pipelined`` on an asyncio client."""
    async with redis.pipeline(transaction=False) as pipe:
        for command in commands:
            command.run(pipe, {})
        return list(await pipe.execute())


@dataclass(frozen=True)
class Durability:
    """A job is accepted once ``replicas`` replicas of the master have it: its creation is
    followed by WAIT on the same connection, which costs one round trip to the replicas."""

    replicas: int
    timeout_ms: int

    def wait(self) -> Command:
        return Command("execute_command", ("WAIT", self.replicas, self.timeout_ms))

    def check(self, job_id: str, acknowledged: int) -> None:
        """Raises ``QueueUnavailable`` if fewer replicas than asked have the job."""
        if acknowledged < self.replicas:
            raise QueueUnavailable(
                f"Job '{job_id}' reached the Redis master but {acknowledged} of "
                f"{self.replicas} replica(s) within {self.timeout_ms} ms "
                "(CHATQ_REDIS_WAIT_REPLICAS): it may still run. Send it again with the same "
                "job id, which runs once however often it is sent."
            )


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


@dataclass(frozen=True)
class Watched:
    """A job as a reader of its events finds it first (``watch_job.lua``)."""

    status: JobStatus | None  # None: no such job
    result: ChatResult | None  # once it has ended
    end_in_record_only: bool  # it ended with its end published, not in its stream

    @property
    def final_result(self) -> ChatResult | None:
        return self.result if self.status is not None and self.status.is_terminal else None


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
    request_hash: str | None = None  # submitted with an idempotency key: its request's hash
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
            request_hash=data.get("request_hash"),
            result=ChatResult.model_validate_json(result) if result else None,
        )

    @property
    def final_result(self) -> ChatResult | None:
        """The result, once the job has ended."""
        return self.result if self.status.is_terminal else None


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def queued_fields(
    job: ChatJob, queue: str, *, payload: str | None = None, reply_to: str | None = None
) -> dict[str, Any]:
    """The record of a job just accepted into ``queue``, with its message's payload (emptied
    when the job ends) for sending it again should that message be lost, and the channel its
    end is published on if its submitter awaits it there (``reply_to``)."""
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
    if reply_to is not None:
        fields["reply_to"] = reply_to
    if job.traceparent is not None:  # outlives the payload: a shared answer links to it
        fields["traceparent"] = job.traceparent
    if job.request_hash is not None:  # a retry with its idempotency key is checked against it
        fields["request_hash"] = job.request_hash
    return fields


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


def not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"No job with id '{job_id}' (unknown, or its record expired).")


class Ending(TypedDict, total=False):
    """How a job's end touches more than its record and stream, in the same atomic step."""

    must_exist: bool  # the record must exist (a cancel): a missing job raises JobNotFound
    dead_letter: ChatJob | None  # a failed job given here is filed as a dead letter
    share_key: str | None  # the key of the call it led for identical requests: freed, or...
    cache_ttl_s: int  # ...if done and this is > 0, its record is their cached answer
    task_event: tuple[str, str] | None  # a channel and the task event published on it


class EventCursor:
    """Where a reader of a job's events is: the next blocking read to send, and the events
    each reply adds, up to the end event or the deadline."""

    def __init__(self, job_id: str, *, timeout: float, since: str = "0-0"):
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.stream = keys.events_key(job_id)
        self.last_id = since
        self.ended = False

    def read(self) -> Command:
        """The next XREAD; raises ``JobTimeout`` once the deadline has passed."""
        remaining_ms = int((self.deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise JobTimeout(f"Job '{self.job_id}' did not finish within {self.timeout:g} s.")
        block = min(remaining_ms, MAX_BLOCK_MS)
        return Command("xread", ({self.stream: self.last_id},), {"block": block})

    def take(self, reply: Any) -> list[Event]:
        """The events of an XREAD reply, in order, up to and with the end event."""
        events: list[Event] = []
        for _, entries in reply or ():
            for entry_id, fields in entries:
                self.last_id = entry_id
                event = decode_event(fields)
                events.append(event)
                if isinstance(event, EndEvent):
                    self.ended = True
                    return events
        return events


@cache
def created_script() -> str:
    """create_job.lua, with the quota's reservation it calls."""
    quota = lua("chatq.shared.job_state", "quota_lib.lua")
    return quota + "\n" + lua("chatq.shared.job_state", "create_job.lua")


def created(job: ChatJob, reply: Any) -> bool:
    """Whether ``create`` recorded the job (False: its id was taken); raises
    ``QuotaExceeded`` if it would have passed its tenant's daily token quota."""
    if int(reply) < 0:
        raise QuotaExceeded(
            f"Tenant '{job.tenant}' has not enough of its daily token quota left for this "
            "request (its prompt plus max_tokens); lower max_tokens or wait for the next UTC "
            "day.",
            retry_after=(int(job.created_at) // 86400 + 1) * 86400 - job.created_at,
        )
    return bool(reply)


def fair_scheduler(settings: Settings) -> SchedulerPolicy | None:
    """The scheduler's policy when it is on; None: first come, first served."""
    return settings.scheduler if settings.scheduler.mode == "fair" else None


class JobCommands:
    """The commands of a job's life, with its settings: record TTLs and the check delay."""

    def __init__(
        self,
        *,
        result_ttl_s: int,
        events_ttl_s: int,
        lost_job_check_s: float = DEFAULT_LOST_JOB_CHECK_S,
        scheduler: SchedulerPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.result_ttl_s = result_ttl_s
        self.events_ttl_s = events_ttl_s
        self.lost_job_check_s = lost_job_check_s
        self.scheduler = scheduler  # None: first come, first served
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> JobCommands:
        return cls(
            result_ttl_s=settings.result_ttl_s,
            events_ttl_s=settings.events_ttl_s,
            lost_job_check_s=settings.lost_job_check_s,
            scheduler=fair_scheduler(settings),
        )

    # -- producer side -------------------------------------------------------------------------

    def create(
        self,
        job: ChatJob,
        queue: str,
        *,
        send: bool = True,
        reply_to: str | None = None,
        new_id: bool = False,
    ) -> ScriptCall:
        """Records a newly accepted job and (if ``send``) queues its message, in one step;
        replies 1, or 0 if its id was taken (then nothing is sent). ``reply_to``: the channel
        its end is published on instead of its stream (``watch`` puts it there as well).
        ``new_id``: the id was generated for this job, so it is not looked up."""
        body = job.model_dump(mode="json", exclude_none=True)
        fields = queued_fields(job, queue, payload=orjson.dumps(body).decode(), reply_to=reply_to)
        message = chat_message(body, queue) if send else ""
        check_at = check_time(self.clock() + self.lost_job_check_s)
        if self.scheduler is not None and send:
            return scheduling.admit(
                job,
                scheduling.entry_for(job, queue, self.scheduler),
                message,
                check_at=check_at,
                new_id=new_id,
                now=self.clock(),
                fields=[x for pair in fields.items() for x in pair],
            )
        return ScriptCall(
            created_script(),
            [keys.job_key(job.id), keys.PENDING, queue, *scheduling.quota_keys(job)],
            [
                check_at,
                job.id,
                message,
                "1" if new_id else "0",
                scheduling.reserved_tokens(job),
                *(x for pair in fields.items() for x in pair),
            ],
        )

    @staticmethod
    def send(job: dict[str, Any], queue: str) -> Command:
        """Queues a message for a job already recorded (``job``: the ``ChatJob`` as JSON)."""
        return Command("lpush", (queue, chat_message(job, queue)))

    @staticmethod
    def get(job_id: str) -> Command:
        return Command("hgetall", (keys.job_key(job_id),))

    @staticmethod
    def trace(job_id: str) -> Command:
        """The trace the job was submitted in (a ``traceparent``, or None)."""
        return Command("hget", (keys.job_key(job_id), "traceparent"))

    @staticmethod
    def record(job_id: str, reply: dict[str, str]) -> JobRecord:
        """The record a ``get`` replied; raises ``JobNotFound`` if there is none."""
        if not reply:
            raise not_found(job_id)
        return JobRecord.from_hash(job_id, reply)

    def cancel(self, job_id: str, reason: str = "Cancelled by the caller.") -> ScriptCall:
        """Ends a job that has not ended as cancelled (read the reply with ``ended``)."""
        return self.finish(cancelled_result(job_id, reason, self.clock()), must_exist=True)

    @staticmethod
    def events(job_id: str, *, timeout: float, since: str = "0-0") -> EventCursor:
        return EventCursor(job_id, timeout=timeout, since=since)

    @staticmethod
    def watch(job_id: str) -> ScriptCall:
        """Reads how far the job is, for a reader of its events other than its submitter
        (read the reply with ``watched``): its end then reaches its stream too."""
        return ScriptCall(
            lua("chatq.shared.job_state", "watch_job.lua"), [keys.job_key(job_id)], []
        )

    @staticmethod
    def watched(reply: Any) -> Watched:
        status, result, outside = reply
        return Watched(
            status=JobStatus(status) if status else None,
            result=ChatResult.model_validate_json(result) if result else None,
            end_in_record_only=outside == 1,
        )

    # -- worker side ---------------------------------------------------------------------------

    def claim(self, job: ChatJob, *, lease_s: float, worker: str) -> ScriptCall:
        """Claims the job for ``lease_s`` (read the reply with ``started``)."""
        args = [self.clock(), self.result_ttl_s, job.request.model, job.created_at]
        return ScriptCall(
            lua("chatq.shared.job_state", "start_job.lua"),
            [keys.job_key(job.id)],
            [*args, lease_s, worker],
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

    def renew(self, job_ids: Iterable[str], *, lease_s: float) -> ScriptCall | None:
        """Extends a worker's claims on the jobs it runs; None if it runs none."""
        ids = list(job_ids)
        if not ids:
            return None
        return ScriptCall(
            lua("chatq.shared.job_state", "renew_leases.lua"),
            [keys.PENDING, *(keys.job_key(job_id) for job_id in ids)],
            [check_time(self.clock() + lease_s), *ids],
        )

    def defer(self, job_id: str, delay_s: float) -> ScriptCall:
        """Puts a job aside for ``delay_s``; replies 0 if its record keeps no payload."""
        now = self.clock()
        return ScriptCall(
            lua("chatq.shared.job_state", "defer_job.lua"),
            [keys.job_key(job_id), keys.DEFERRED, keys.PENDING],
            [now + delay_s, check_time(now + delay_s + self.lost_job_check_s), job_id],
        )

    def park(self, job: ChatJob, queue: str) -> ScriptCall:
        """Puts a job a worker took back in the fair scheduler, in its place (replies as
        ``park_job.lua`` says)."""
        body = job.model_dump(mode="json", exclude_none=True)
        entry = scheduling.entry_for(job, queue, self.scheduler or SchedulerPolicy())
        return scheduling.park(job.id, entry, chat_message(body, queue), now=self.clock())

    @staticmethod
    def published(job_id: str) -> Command:
        """Every event of the job's stream so far (an interrupted attempt's chunks)."""
        return Command("xrange", (keys.events_key(job_id),))

    def deltas(
        self, job_id: str, chunks: Iterable[dict[str, Any] | str], *, first: bool
    ) -> list[Command]:
        """Appends chunks to the job's stream; the first of a stream also sets its TTL and
        the job's ``first_token_at``."""
        stream = keys.events_key(job_id)
        commands = [Command("xadd", (stream, encode_delta(chunk))) for chunk in chunks]
        if first:
            commands.append(Command("expire", (stream, self.events_ttl_s)))
            commands.append(Command("hset", (keys.job_key(job_id), "first_token_at", self.clock())))
        return commands

    def finish(self, result: ChatResult, **how: Unpack[Ending]) -> ScriptCall:
        """Ends the job with ``result`` unless it already ended (read the reply with
        ``ended``); ``Ending`` says what else happens in the same step."""
        must_exist = how.get("must_exist", False)
        dead_letter = how.get("dead_letter")
        share_key = how.get("share_key")
        cache_ttl_s = how.get("cache_ttl_s", 0)
        channel, event = how.get("task_event") or ("", "")
        if not result.status.is_terminal:
            raise ValueError(f"a job ends with a terminal status, not {result.status}")
        now = self.clock()
        letter = ""
        if dead_letter is not None and result.status is JobStatus.failed:
            entry = DeadLetterEntry(job=dead_letter, result=result, failed_at=now)
            letter = entry.model_dump_json(exclude_none=True)
        job_id = result.job_id
        script_keys = [
            keys.job_key(job_id),
            keys.events_key(job_id),
            keys.DEAD_LETTERS,
            keys.DEAD_LETTER_JOBS,
            keys.answer_key(share_key or job_id),  # unused unless the job led a shared call
            keys.PENDING,
        ]
        record_ttl_s = max(self.result_ttl_s, cache_ttl_s) if share_key else self.result_ttl_s
        args = [
            result.status.value,
            result.to_json(),
            now,
            record_ttl_s,  # a cached answer lives in its leader's record
            self.events_ttl_s,
            "1" if must_exist else "0",
            letter,
            job_id,
            "1" if share_key else "0",
            cache_ttl_s,
            channel,
            event,
            keys.CANCELS,
        ]
        return ScriptCall(lua("chatq.shared.job_state", "finish_job.lua"), script_keys, args)

    @staticmethod
    def note_webhook(job_id: str, state: str) -> ScriptCall:
        """Notes on the record how the job's webhook delivery went."""
        return ScriptCall(
            lua("chatq.shared.job_state", "note_webhook.lua"), [keys.job_key(job_id)], [state]
        )

    @staticmethod
    def note_partial_answer(job_id: str, completion_json: str) -> ScriptCall:
        """Adds a cancelled job's answer so far, with its usage, to its result."""
        source = lua("chatq.shared.job_state", "note_partial_answer.lua")
        return ScriptCall(source, [keys.job_key(job_id)], [completion_json])

    @staticmethod
    def erase(job_ids: Iterable[str], answer_keys: Iterable[str]) -> list[Command]:
        """Deletes jobs (records, streams, dead letters, pending checks) and answers cached
        under ``answer_keys``; the first reply counts the dead letters removed."""
        ids = list(job_ids)
        commands: list[Command] = []
        if ids:
            commands += [
                Command("zrem", (keys.DEAD_LETTERS, *ids)),
                Command("hdel", (keys.DEAD_LETTER_JOBS, *ids)),
                Command("zrem", (keys.PENDING, *ids)),
            ]
        doomed = [k for job_id in ids for k in (keys.job_key(job_id), keys.events_key(job_id))]
        doomed += [keys.answer_key(k) for k in answer_keys]
        return commands + [Command("delete", (key,)) for key in doomed]

    @staticmethod
    def ended(reply: Any, job_id: str) -> bool:
        """Whether a ``finish`` (or ``cancel``) ended the job; raises if it does not exist."""
        if reply == -1:
            raise not_found(job_id)
        return reply == 1


class StoreBase:
    """What the sync and asyncio stores share: their client, the commands, and the lines
    scripts go on. A subclass says how to make a client (``connect``) and its lines
    (``multiplex``, from ``chatq.shared.multiplexed``): scripts, which answer at once, go in groups
    on one connection; other commands, blocking reads among them, take one of the client's
    pool each."""

    def __init__(
        self,
        redis: Any,
        *,
        result_ttl_s: int,
        events_ttl_s: int,
        lost_job_check_s: float = DEFAULT_LOST_JOB_CHECK_S,
        clock: Callable[[], float] = time.time,
        durability: Durability | None = None,
        scheduler: SchedulerPolicy | None = None,
    ):
        self.redis = redis
        self.durability = durability
        self.commands = JobCommands(
            result_ttl_s=result_ttl_s,
            events_ttl_s=events_ttl_s,
            lost_job_check_s=lost_job_check_s,
            scheduler=scheduler,
            clock=clock,
        )
        self.scripts: dict[str, Any] = {}  # registered on this client, by source
        self.lines = self.multiplex(redis)

    @staticmethod
    def connect(url: str) -> Any:
        raise NotImplementedError

    @staticmethod
    def multiplex(redis: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def from_settings(cls, settings: Settings, redis: Any = None) -> Self:
        return cls(
            redis or cls.connect(settings.effective_redis_url),
            result_ttl_s=settings.result_ttl_s,
            events_ttl_s=settings.events_ttl_s,
            lost_job_check_s=settings.lost_job_check_s,
            durability=Durability(settings.redis_wait_replicas, settings.redis_wait_timeout_ms)
            if settings.redis_wait_replicas
            else None,
            scheduler=fair_scheduler(settings),
        )

    def send_command(self, command: Command | ScriptCall) -> Any:
        """Sends one command or script call (an awaitable, on an asyncio client)."""
        if isinstance(command, ScriptCall):
            return self.lines.script(command)
        return command.run(self.redis, self.scripts)
