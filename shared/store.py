"""The job store on a synchronous Redis client: sends what ``chatq.shared.job_state`` builds."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Unpack

from chatq.shared import keys
from chatq.shared.job_state import (
    DEFAULT_LEASE_S,
    DEFAULT_LOST_JOB_CHECK_S,
    AlreadyEnded,
    Busy,
    Claim,
    Claimed,
    DeadLetterEntry,
    Ending,
    JobCommands,
    JobRecord,
    StoreBase,
    cancelled_result,
    created,
    not_found,
    pipelined,
    queued_fields,
)
from chatq.shared.job_state.scheduling import PARK_NO_PAYLOAD
from chatq.shared.jobs import ChatJob, ChatResult
from chatq.shared.multiplexed import ThreadMultiplexer
from chatq.shared.protocol import DeltaEvent, EndEvent, Event, decode_event
from chatq.shared.redis_clients import sync_client
from chatq.shared.scripts import ScriptCall
from redis import Redis

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_LOST_JOB_CHECK_S",
    "AlreadyEnded",
    "Busy",
    "Claim",
    "Claimed",
    "DeadLetterEntry",
    "JobRecord",
    "JobStore",
    "cancelled_result",
    "queued_fields",
]


class JobStore(StoreBase):
    """Reads and writes job records and event streams on a (synchronous) Redis client."""

    redis: Redis
    lines: ThreadMultiplexer
    connect = staticmethod(sync_client)
    multiplex = ThreadMultiplexer

    def close(self) -> None:
        """Closes its connections, and its client's."""
        self.lines.close()
        self.redis.close()

    # -- producer side -------------------------------------------------------------------------

    def create(self, job: ChatJob, queue: str, *, new_id: bool = False) -> bool:
        """Records a newly accepted job and queues its message, in one step; False if its id
        was taken (then nothing is sent). ``new_id``: the id was generated for this job."""
        call = self.commands.create(job, queue, new_id=new_id)
        if self.durability is None:
            return created(job, self.send_command(call))
        reply, replicas = pipelined(self.redis, [call, self.durability.wait()])
        self.durability.check(job.id, replicas)
        return created(job, reply)

    def send(self, job: dict[str, Any], queue: str) -> None:
        """Queues a message for a job already recorded (``job`` is the ``ChatJob`` as JSON):
        to send it again, or to retry a dead letter."""
        self.send_command(self.commands.send(job, queue))

    def get(self, job_id: str) -> JobRecord:
        return self.commands.record(job_id, self.send_command(self.commands.get(job_id)))

    def trace_of(self, job_id: str) -> str | None:
        """The trace the job was submitted in (a ``traceparent``), if any."""
        return self.send_command(self.commands.trace(job_id))

    def cancel(self, job_id: str, reason: str = "Cancelled by the caller.") -> bool:
        """Cancels a job that has not ended. False if it had already ended."""
        return self.commands.ended(self.send_command(self.commands.cancel(job_id, reason)), job_id)

    def events(
        self, job_id: str, *, timeout: float, since: str = "0-0", watch: bool = True
    ) -> Iterator[Event]:
        """Every event of a job from ``since`` on, ending with its end event. ``watch``
        first, unless the job is known to end in its stream (no reply channel)."""
        if watch:
            watched = self.commands.watched(self.send_command(self.commands.watch(job_id)))
            if watched.end_in_record_only and watched.result is not None:
                yield EndEvent(watched.result)
                return
        cursor = self.commands.events(job_id, timeout=timeout, since=since)
        while not cursor.ended:
            yield from cursor.take(self.send_command(cursor.read()))

    def wait(self, job_id: str, *, timeout: float) -> ChatResult:
        """The job's result, waiting up to ``timeout`` seconds for it to end."""
        watched = self.commands.watched(self.send_command(self.commands.watch(job_id)))
        if watched.status is None:
            raise not_found(job_id)
        if (result := watched.final_result) is not None:
            return result
        for event in self.events(job_id, timeout=timeout, watch=False):
            if isinstance(event, EndEvent):
                return event.result
        raise AssertionError("unreachable: events() ends with an EndEvent or raises")

    # -- worker side ---------------------------------------------------------------------------

    def start(self, job: ChatJob, *, lease_s: float = DEFAULT_LEASE_S) -> Claim:
        """Claims the job for this worker for ``lease_s`` (renew with ``renew_leases``)."""
        return self.started(self.claim(job, lease_s=lease_s))

    def claim(self, job: ChatJob, *, lease_s: float = DEFAULT_LEASE_S, worker: str = "") -> Any:
        """Sends the claim of ``start`` (read its reply with ``started``)."""
        return self.send_command(self.claim_call(job, lease_s=lease_s, worker=worker))

    def claim_call(self, job: ChatJob, *, lease_s: float, worker: str) -> ScriptCall:
        """The claim of ``start`` as a script call, to chain with others in one round trip."""
        return self.commands.claim(job, lease_s=lease_s, worker=worker)

    @staticmethod
    def started(reply: Any) -> Claim:
        """The claim that ``start_job.lua`` replied."""
        return JobCommands.started(reply)

    def renew_leases(self, job_ids: Iterable[str], *, lease_s: float = DEFAULT_LEASE_S) -> int:
        """Extends this worker's claims on the jobs it is running."""
        call = self.commands.renew(job_ids, lease_s=lease_s)
        return int(self.send_command(call)) if call is not None else 0

    def defer(self, job_id: str, delay_s: float) -> bool:
        """Puts a job aside for ``delay_s``: it waits in Redis, not in a worker, and
        ``chatq.workers.recovery`` sends it again when due. False if its record keeps no payload
        to send it from (then the caller must retry the message itself)."""
        return bool(self.send_command(self.commands.defer(job_id, delay_s)))

    def set_aside(self, job: ChatJob, queue: str, delay_s: float) -> bool:
        """A job whose provider slot is ``delay_s`` off waits in Redis, not in a worker: in
        the fair scheduler, in its place, or (first come, first served) deferred until then.
        False if its record keeps no payload to send it from (the caller retries it)."""
        if self.commands.scheduler is None:
            return self.defer(job.id, delay_s)
        return int(self.send_command(self.commands.park(job, queue))) != PARK_NO_PAYLOAD

    def note_webhook(self, job_id: str, state: str) -> None:
        """Notes how the job's webhook delivery went (delivered, retrying, failed)."""
        self.send_command(self.commands.note_webhook(job_id, state))

    def note_partial_answer(self, job_id: str, completion_json: str) -> None:
        """Adds a job's answer so far, with its usage, to the result its cancel wrote."""
        self.send_command(self.commands.note_partial_answer(job_id, completion_json))

    def count_tenant_tokens(self, tenant: str, tokens: int, now: float) -> None:
        """Adds tokens a tenant's job used to its daily quota counter."""
        key = keys.quota_tokens_key(tenant, now)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(key, tokens)
            pipe.expire(key, 2 * 86400)
            pipe.execute()

    def published_chunks(self, job_id: str) -> list[dict[str, Any]]:
        """The chunks already streamed to consumers (by an earlier, interrupted attempt)."""
        entries = self.send_command(self.commands.published(job_id))
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
        """Appends chunks to the job's stream in one round trip (see ``JobCommands.deltas``)."""
        commands = self.commands.deltas(job_id, chunks, first=first)
        if len(commands) == 1:
            self.send_command(commands[0])
            return
        pipelined(self.redis, commands)

    def finish(self, result: ChatResult, **how: Unpack[Ending]) -> bool:
        """Ends the job with ``result`` unless it already ended: True if this call ended it
        (``Ending`` says what else happens in the same step)."""
        reply = self.send_command(self.commands.finish(result, **how))
        return self.commands.ended(reply, result.job_id)
