"""A job's life in a worker: claimed, its claim renewed while it runs, ended exactly once.

The claim and the end are the store's atomic scripts (``start_job.lua``, ``finish_job.lua``);
this module holds what a worker process knows around them: which jobs it runs now (their
claims are renewed), and who must hear of a job's end (sessions, quotas, metrics, webhooks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from chatq.shared.broker import task_end_event
from chatq.shared.celery_config import TASK_CHAT, chat_argsrepr
from chatq.shared.jobs import ChatJob, ChatResult, JobError, JobStatus, Timings
from chatq.shared.outage import retry_while_redis_down
from chatq.shared.store import AlreadyEnded, Busy, Claimed, JobStore
from chatq.workers.limiter import Deferred
from redis.exceptions import RedisError

log = logging.getLogger("chatq.worker")

REDIS_PATIENCE_S = 300.0  # how long an answer in hand waits for Redis to come back


def cancelled_unrun(job: ChatJob, now: float) -> ChatResult:
    """What Flower is told of a job cancelled before a worker ran it."""
    error = JobError(type="cancelled", code="job_cancelled", message="Cancelled before it ran.")
    timings = Timings(created_at=job.created_at, finished_at=now)
    return ChatResult(job_id=job.id, status=JobStatus.cancelled, error=error, timings=timings)


@dataclass(frozen=True)
class JobEnd:
    """A job this process ended, and how: what listeners hear."""

    job: ChatJob
    result: ChatResult
    cached_as: str | None = None  # the cache key its answer was stored under, if any


class EndListener(Protocol):
    def job_ended(self, end: JobEnd) -> None: ...


@dataclass(frozen=True)
class Sharing:
    """How an ending job leaves the shared-answer state: the key of the call it led, freed
    in the same step, and how long its answer is cached under it (0: not cached)."""

    key: str
    cache_ttl_s: int = 0


class JobLifecycle:
    """Claims, renews and ends jobs for one worker process."""

    def __init__(
        self,
        store: JobStore,
        *,
        worker_name: str,
        lease_s: float,
        clock: Callable[[], float],
        listeners: Sequence[EndListener] = (),
        before_end: Sequence[EndListener] = (),
        task_events_db: int | None = None,
    ):
        self.store = store
        # The broker's database, where each job's end publishes its task event for Flower;
        # None: no event.
        self.task_events_db = task_events_db
        self.worker_name = worker_name  # Celery's node name, once known
        self.lease_s = lease_s
        self.clock = clock
        self.listeners = list(listeners)  # told once the job has ended
        # Told just before a done job's end is recorded: what a caller who sees the end must
        # find already (the session's new turn, for the next turn sent at once).
        self.before_end = list(before_end)
        self._running: set[str] = set()  # jobs this process runs now: their claims are renewed
        self._lock = threading.Lock()

    def claim(self, job: ChatJob) -> Claimed | None:
        """Claims the job for this worker; None if it has already ended. Raises ``Deferred``
        while another worker's claim on it is alive (a redelivery of a job still running)."""
        return self.claimed(
            job, self.store.claim(job, lease_s=self.lease_s, worker=self.worker_name)
        )

    def claim_call(self, job: ChatJob) -> Any:
        """The claim as a script call, to chain with others (read its reply with ``claimed``)."""
        return self.store.claim_call(job, lease_s=self.lease_s, worker=self.worker_name)

    def claimed(self, job: ChatJob, reply: Any) -> Claimed | None:
        """What a claim's reply means, as ``claim`` tells it."""
        match self.store.started(reply):
            case Busy(retry_in_s):
                raise Deferred(retry_in_s, busy=True)
            case AlreadyEnded(status):
                log.info("job %s skipped: already %s", job.id, status.value)
                if status is JobStatus.cancelled:  # no worker ended it: Flower hears of it here
                    self._publish(self._task_event(job, cancelled_unrun(job, self.clock())))
                return None
            case Claimed() as claimed:
                with self._lock:
                    self._running.add(job.id)
                return claimed
        raise AssertionError("unreachable")

    def claim_each(
        self, jobs: Iterable[ChatJob], held: dict[str, Claimed] | None = None
    ) -> tuple[list[tuple[ChatJob, Claimed]], dict[str, Deferred | None]]:
        """Claims jobs to answer together (those in ``held`` are claimed already): the ones
        now held, and what the others' claims said (``Deferred``, or None: already ended).
        If claiming fails, the claims made are released before the error goes on."""
        claimed: list[tuple[ChatJob, Claimed]] = []
        refused: dict[str, Deferred | None] = {}
        try:
            for job in jobs:
                try:
                    claim = (held or {}).get(job.id) or self.claim(job)
                except Deferred as deferred:
                    refused[job.id] = deferred
                    continue
                if claim is None:
                    refused[job.id] = None
                else:
                    claimed.append((job, claim))
        except BaseException:
            self.release_all(job.id for job, _ in claimed)
            raise
        return claimed, refused

    def release(self, job_id: str) -> None:
        """This process no longer runs the job: its claim is no longer renewed."""
        with self._lock:
            self._running.discard(job_id)

    def release_all(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._running.difference_update(job_ids)

    @property
    def running(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._running)

    def renew(self) -> int:
        """Extends the claims on every job this process runs."""
        return self.store.renew_leases(self.running, lease_s=self.lease_s)

    def end(
        self, job: ChatJob, result: ChatResult, *, sharing: Sharing | None = None
    ) -> ChatResult:
        """Records the job's end (unless it had ended already) and tells the listeners."""
        self.release(job.id)
        result.timings.finished_at = self.clock()
        cached_as = sharing.key if sharing and sharing.cache_ttl_s else None
        if result.status is JobStatus.done:
            self._tell(self.before_end, JobEnd(job, result, cached_as))
        dead_letter = job if result.status is JobStatus.failed else None
        ended = retry_while_redis_down(  # the answer is in hand: record it once Redis is back
            lambda: self.store.finish(
                result,
                dead_letter=dead_letter,
                share_key=sharing.key if sharing else None,
                cache_ttl_s=sharing.cache_ttl_s if sharing else 0,
                task_event=self._task_event(job, result),
            ),
            patience_s=REDIS_PATIENCE_S,
        )
        if not ended and result.status is JobStatus.cancelled and result.completion is not None:
            # cancelled by a caller while its call ran here, stopped by this worker: the
            # record gets what it used, and the listeners (quota, metrics, webhook) its end
            self.store.note_partial_answer(job.id, orjson.dumps(result.completion.wire()).decode())
            self._publish(self._task_event(job, result))  # its end script published nothing
            ended = True
        if ended:
            self._tell(self.listeners, JobEnd(job, result, cached_as))
        return result

    def _task_event(self, job: ChatJob, result: ChatResult) -> tuple[str, str] | None:
        """The job's end as Flower reads a task's: name, masked arguments, worker, times."""
        if self.task_events_db is None:
            return None
        timings = result.timings
        received = job.created_at
        started = timings.started_at or received
        finished = timings.finished_at or self.clock()
        fields: dict[str, Any] = {
            "status": result.status.value,
            "uuid": job.id,
            "hostname": self.worker_name,
            "timestamp": finished,
            "name": TASK_CHAT,
            "args": chat_argsrepr(_shown(job)),  # no kwargs: Flower would parse "{}" each time
            "root_id": job.id,
            "received": received,
            "started": started,
            "runtime": max(0.0, finished - started),
        }
        if result.status is JobStatus.done:
            usage = result.usage
            fields["result"] = f"done, {usage.total_tokens if usage else 0} tokens"
        elif result.error is not None:
            fields["exception"] = (
                f"{result.error.code or result.error.type}: {result.error.message}"
            )
            fields["traceback"] = ""
        return task_end_event(self.task_events_db, fields)

    def _publish(self, event: tuple[str, str] | None) -> None:
        """Publishes a task event apart from an end script; Flower's view is not worth a
        job's failure."""
        if event is None:
            return
        try:
            self.store.redis.publish(*event)
        except RedisError as exc:
            log.warning("task event not published: %s", exc)

    @staticmethod
    def _tell(listeners: Sequence[EndListener], end: JobEnd) -> None:
        for listener in listeners:
            try:
                listener.job_ended(end)
            except Exception:  # one listener's failure must not undo the end
                log.exception("job %s: end listener %r failed", end.job.id, listener)


def _shown(job: ChatJob) -> dict[str, Any]:
    """What ``chat_argsrepr`` reads of a job, without dumping the whole job (its messages)
    at every end."""
    request = job.request
    return {
        "id": job.id,
        "request": {"model": request.model, "messages": request.messages, "stream": request.stream},
    }
