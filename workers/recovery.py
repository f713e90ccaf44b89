"""Getting every job that has not ended to a worker: jobs whose worker died, jobs put aside
until their provider slot, and jobs whose queue message was lost.

- A claimed job's claim lapses when its worker stops renewing it (it died: SIGKILL, OOM, a
  lost host). Its check in ``chatq:pending`` (moved to the claim's end by each renewal, or by
  a sweep that finds the claim alive) falls due then, and one live worker sends the
  job again from the payload kept in its record, at once, not after kombu's visibility
  timeout. The dead worker's own message, restored later, finds the job ended or running,
  and is skipped.
- A deferred job waits in ``chatq:deferred``, not in a worker's memory; when due, it is sent
  again (``release_deferred``).
- A worker holds a chat message in memory only (``chatq.shared.broker``), from the
  moment it takes it off its queue until it claims the job, a moment later. So a due job
  that no one has claimed is looked for in its queue; if it is not there, the worker that
  took its message died before claiming it, and the job is sent again.

A job runs once however many of its messages arrive (its claim, ``start_job.lua``), so a
message sent again by mistake costs a skipped delivery, never a second run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery.signals import worker_ready
from chatq.shared import metrics
from chatq.shared.broker import MessageFinder, chat_message
from chatq.shared.job_state import Command, JobCommands, pending, pipelined
from chatq.shared.jobs import JobStatus
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import get_settings
from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("chatq.worker")

ENDED = {s.value for s in JobStatus if s.is_terminal}
DUE_PER_SWEEP = 1000


@dataclass
class Sweep:
    """What one sweep found among the pending jobs that were due."""

    due: int = 0
    ended: int = 0  # ended (or expired) meanwhile: no longer pending
    running: int = 0  # claimed by a live worker: checked again when its claim would lapse
    reclaimed: int = 0  # claimed by a worker that stopped renewing the claim: sent again
    waiting: int = 0  # message found, in its queue or held by a worker
    resent: int = 0  # message found nowhere: sent again


class LostJobSweeper:
    def __init__(
        self,
        redis: Redis,
        *,
        check_after_s: float,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = redis
        self.check_after_s = check_after_s
        self.clock = clock
        self._messages = MessageFinder(redis)
        self._scripts: dict[str, Any] = {}  # job-state scripts registered on ``redis``

    def sweep(self) -> Sweep:
        """Checks the pending jobs that are due, and sends again those whose message is lost."""
        now = self.clock()
        due: list[str] = self._run(pending.due(now, DUE_PER_SWEEP))
        report = Sweep(due=len(due))
        if not due:
            return report
        rows = pipelined(self.redis, pending.sweep_rows(due))
        ended: list[str] = []
        check_at: dict[str, float] = {}
        suspects: dict[str, tuple[str, str]] = {}
        for job_id, (status, lease_until, queue, payload) in zip(due, rows, strict=True):
            if status is None or status in ENDED or not payload or not queue:
                ended.append(job_id)
            elif status == JobStatus.in_progress.value and float(lease_until or 0) > now:
                check_at[job_id] = float(lease_until)
                report.running += 1
            elif status == JobStatus.in_progress.value:  # its worker is gone: run it again
                check_at[job_id] = now + self.check_after_s
                self._send(job_id, queue, payload, metrics.JOBS_RECLAIMED, "its worker died")
                report.reclaimed += 1
            else:
                suspects[job_id] = (queue, payload)
        report.ended = len(ended)
        found = self._messages.find(suspects.keys(), {q for q, _ in suspects.values()})
        for job_id, (queue, payload) in suspects.items():
            check_at[job_id] = now + self.check_after_s
            if job_id in found:
                report.waiting += 1
                continue
            self._send(job_id, queue, payload, metrics.JOBS_RESENT, "its message was lost")
            report.resent += 1
        pipelined(self.redis, pending.settle(ended, check_at))
        return report

    def _run(self, command: Command) -> Any:
        return command.run(self.redis, {})

    def release_deferred(self) -> int:
        """Sends again the deferred jobs that are due; how many. Any worker may call it at
        any time: a job leaves the set once, as its message joins its queue, so it is sent
        once."""
        due: list[str] = self._run(pending.due_deferred(self.clock(), DUE_PER_SWEEP))
        sent = 0
        for job_id in due:
            status, queue, payload = self._run(pending.resend_row(job_id))
            if status in ENDED or not payload or not queue:
                self._run(pending.take_deferred(job_id))  # ended meanwhile (cancelled, say)
                continue
            message = chat_message(json.loads(payload), queue)
            if pending.undefer(job_id, queue, message).run(self.redis, self._scripts) == 1:
                metrics.JOBS_UNDEFERRED.labels(queue).inc()
                sent += 1
        return sent

    def _send(self, job_id: str, queue: str, payload: str, counter: Any, why: str) -> None:
        self._run(JobCommands.send(json.loads(payload), queue))
        counter.labels(queue).inc()
        log.warning("job %s: %s; sent it again to %s", job_id, why, queue)

    def run_forever(self, node: str) -> None:
        """Releases due deferred jobs every tick; sweeps every interval, when no other worker
        has this interval's turn. An error is logged and counted; the loop goes on."""
        interval_s = sweep_interval_s(self.check_after_s)
        while True:
            time.sleep(DEFERRED_TICK_S)
            with loop_round("recovery"):
                self.release_deferred()
                if self._run(pending.sweep_turn(node, interval_s)):
                    self.sweep()


DEFERRED_TICK_S = 0.5  # how late a deferred job may be sent, at most


@contextmanager
def loop_round(loop: str) -> Iterator[None]:
    """One round of a background loop: an error is logged and counted and the loop goes
    on; a round that ends well is noted in the loop's heartbeat metric."""
    try:
        yield
    except RedisError as exc:
        metrics.LOOP_ERRORS.labels(loop).inc()
        log.warning("%s: redis unavailable (%s); trying again", loop, exc)
    except Exception:
        metrics.LOOP_ERRORS.labels(loop).inc()
        log.exception("%s: unexpected error; the loop goes on", loop)
    else:
        metrics.LOOP_HEARTBEAT.labels(loop).set(time.time())


def sweep_interval_s(check_after_s: float) -> float:
    """A quarter of the check delay, from half a second up to 5 s: a dead worker's jobs run
    again within one interval of their claims lapsing."""
    return max(0.5, min(5.0, check_after_s / 4))


@worker_ready.connect
def start_sweeper(sender: Any = None, **_: Any) -> None:
    """Each worker node takes part in the sweeps (one of them sweeps per interval)."""
    settings = get_settings()
    redis = sync_client(settings.effective_redis_url)
    sweeper = LostJobSweeper(redis, check_after_s=settings.lost_job_check_s)
    node = getattr(sender, "hostname", None) or "worker"
    threading.Thread(
        target=sweeper.run_forever, args=(node,), name="chatq-lost-job-sweeper", daemon=True
    ).start()
