"""Sending again the jobs whose queue message was lost.

kombu's Redis transport takes a message off its queue (BRPOP) and only then records it as held
(its ``unacked`` hash, which kombu restores after the visibility timeout). A worker killed
between the two loses the message, and its job would stay queued for ever. So every job not yet
ended is in ``chatq:pending`` with a time to check it. When a job is due, one worker (one at a
time, across the cluster) looks for its message in the job's queue and among held messages; if
it is in neither, the worker sends it again from the payload kept in the job record.

A job runs once however many of its messages arrive (its claim, ``start_job.lua``), so a
message sent again by mistake (one caught in flight between the two places) costs a skipped
delivery, never a second run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.signals import worker_ready
from redis import Redis
from redis.exceptions import RedisError

from shared import keys, metrics
from shared.celery_config import publish_job
from shared.jobs import JobStatus
from shared.scripts import lua
from shared.settings import get_settings
from shared.store import CLIENT_OPTIONS

log = logging.getLogger("chatq.worker")

ENDED = {s.value for s in JobStatus if s.is_terminal}
DUE_PER_SWEEP = 1000
SCAN_CHUNK = 2000  # list items one script call reads: keeps each call short for Redis


@dataclass
class Sweep:
    """What one sweep found among the pending jobs that were due."""

    due: int = 0
    ended: int = 0  # ended (or expired) meanwhile: no longer pending
    running: int = 0  # claimed by a live worker: checked again after its claim
    waiting: int = 0  # message found, in its queue or held by a worker
    resent: int = 0  # message found nowhere: sent again


class LostJobSweeper:
    def __init__(
        self,
        redis: Redis,
        app: Celery,
        *,
        check_after_s: float,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = redis
        self.app = app
        self.check_after_s = check_after_s
        self.clock = clock
        self._find = redis.register_script(lua("workers", "find_messages.lua"))

    def sweep(self) -> Sweep:
        """Checks the pending jobs that are due, and sends again those whose message is lost."""
        now = self.clock()
        due: list[str] = self.redis.zrangebyscore(
            keys.PENDING, "-inf", now, start=0, num=DUE_PER_SWEEP
        )
        report = Sweep(due=len(due))
        if not due:
            return report
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in due:
                pipe.hmget(keys.job_key(job_id), "status", "lease_until", "queue", "payload")
            rows = pipe.execute()
        ended: list[str] = []
        check_at: dict[str, float] = {}
        suspects: dict[str, tuple[str, str]] = {}
        for job_id, (status, lease_until, queue, payload) in zip(due, rows, strict=True):
            if status is None or status in ENDED or not payload or not queue:
                ended.append(job_id)
            elif status == JobStatus.in_progress.value and float(lease_until or 0) > now:
                check_at[job_id] = float(lease_until) + self.check_after_s
                report.running += 1
            else:
                suspects[job_id] = (queue, payload)
        report.ended = len(ended)
        found = self.find_messages(suspects.keys(), {q for q, _ in suspects.values()})
        for job_id, (queue, payload) in suspects.items():
            check_at[job_id] = now + self.check_after_s
            if job_id in found:
                report.waiting += 1
                continue
            publish_job(self.app, json.loads(payload), queue)
            metrics.JOBS_RESENT.labels(queue).inc()
            log.warning("job %s: its message was lost; sent it again to %s", job_id, queue)
            report.resent += 1
        with self.redis.pipeline(transaction=False) as pipe:
            if ended:
                pipe.zrem(keys.PENDING, *ended)
            if check_at:  # XX: a job that ended meanwhile left the set and stays out
                pipe.zadd(keys.PENDING, check_at, xx=True)
            pipe.execute()
        return report

    def find_messages(self, job_ids: Iterable[str], queues: Iterable[str]) -> set[str]:
        """Which of the jobs have a message in one of the queues or held by a worker.

        Lists first, then held messages: a message moves from the first to the second as a
        worker takes it, so it cannot slip past both (the reverse move, a restore, is rare,
        and at worst sends a job twice, which is harmless).
        """
        wanted = set(job_ids)
        found: set[str] = set()
        for queue in sorted(queues):
            for name in keys.queue_lists(queue):
                start = 0
                while wanted - found:
                    scanned, hits = self._scan(name, "list", start, wanted - found)
                    found |= hits
                    if scanned < SCAN_CHUNK:
                        break
                    start += SCAN_CHUNK
        if wanted - found:
            found |= self._scan(keys.KOMBU_UNACKED, "hash", 0, wanted - found)[1]
        return found

    def _scan(self, name: str, kind: str, start: int, wanted: set[str]) -> tuple[int, set[str]]:
        reply: list[Any] = self._find(
            keys=[name], args=[kind, start, start + SCAN_CHUNK - 1, *sorted(wanted)]
        )
        return int(reply[0]), set(reply[1:])

    def run_forever(self, node: str) -> None:
        """Sweeps every interval, when no other worker has this interval's turn."""
        interval_s = sweep_interval_s(self.check_after_s)
        while True:
            time.sleep(interval_s)
            try:
                if self.redis.set(keys.SWEEPER, node, nx=True, px=int(interval_s * 1000)):
                    self.sweep()
            except RedisError as exc:
                log.warning("could not check pending jobs: %s", exc)


def sweep_interval_s(check_after_s: float) -> float:
    """A quarter of the check delay, from half a second up to 15 s."""
    return max(0.5, min(15.0, check_after_s / 4))


@worker_ready.connect
def start_sweeper(sender: Any = None, **_: Any) -> None:
    """Each worker node takes part in the sweeps (one of them sweeps per interval)."""
    from workers.celery_app import app

    settings = get_settings()
    redis = Redis.from_url(settings.effective_redis_url, **CLIENT_OPTIONS)
    sweeper = LostJobSweeper(redis, app, check_after_s=settings.lost_job_check_s)
    node = getattr(sender, "hostname", None) or "worker"
    threading.Thread(
        target=sweeper.run_forever, args=(node,), name="chatq-lost-job-sweeper", daemon=True
    ).start()
