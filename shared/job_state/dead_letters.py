"""The dead-letter registry: jobs that failed for good, with why, to list, retry or purge.

Jobs are filed by ``finish_job.lua`` in the same step that fails them; ``take`` hands one back
for a retry exactly once (``requeue_dead_letter.lua``), however many operators ask at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chatq.shared import keys
from chatq.shared.job_state import check_time
from chatq.shared.jobs import ChatJob, JobError
from chatq.shared.scripts import lua
from chatq.shared.store import DEFAULT_LOST_JOB_CHECK_S, DeadLetterEntry
from pydantic import BaseModel
from redis import Redis


class DeadLetter(BaseModel):
    """One listed dead letter."""

    job_id: str
    failed_at: float
    model: str
    attempts: int
    error: JobError | None
    job: ChatJob


def _letter(raw: str) -> DeadLetter:
    entry = DeadLetterEntry.model_validate_json(raw)
    return DeadLetter(
        job_id=entry.job.id,
        failed_at=entry.failed_at,
        model=entry.job.request.model,
        attempts=entry.result.attempts,
        error=entry.result.error,
        job=entry.job,
    )


class DeadLetters:
    def __init__(
        self,
        redis: Redis,
        *,
        result_ttl_s: int,
        lost_job_check_s: float = DEFAULT_LOST_JOB_CHECK_S,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = redis
        self.result_ttl_s = result_ttl_s
        self.lost_job_check_s = lost_job_check_s
        self.clock = clock
        self._requeue = redis.register_script(
            lua("chatq.shared.job_state", "requeue_dead_letter.lua")
        )

    def count(self) -> int:
        return int(self.redis.zcard(keys.DEAD_LETTERS))

    def list(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Newest first."""
        job_ids = self.redis.zrevrange(keys.DEAD_LETTERS, offset, offset + limit - 1)
        if not job_ids:
            return []
        raw = self.redis.hmget(keys.DEAD_LETTER_JOBS, job_ids)
        return [_letter(r) for r in raw if r]

    def get(self, job_id: str) -> DeadLetter | None:
        raw = self.redis.hget(keys.DEAD_LETTER_JOBS, job_id)
        return _letter(raw) if raw else None

    def take(self, job_id: str) -> ChatJob | None:
        """Removes the dead letter and resets its job to queued; the job to send again, or
        None if it is not (or no longer) in the registry."""
        raw = self._requeue(
            keys=[
                keys.DEAD_LETTERS,
                keys.DEAD_LETTER_JOBS,
                keys.job_key(job_id),
                keys.events_key(job_id),
            ],
            args=[job_id, self.result_ttl_s],
        )
        if not raw:
            return None
        job = DeadLetterEntry.model_validate_json(raw).job
        with self.redis.pipeline(transaction=False) as pipe:  # pending again, like a new job
            pipe.hset(keys.job_key(job_id), "payload", job.model_dump_json(exclude_none=True))
            pipe.zadd(keys.PENDING, {job_id: check_time(self.clock() + self.lost_job_check_s)})
            pipe.execute()
        return job

    def purge(self) -> int:
        """Forgets every dead letter (their job records stay until they expire)."""
        pipe = self.redis.pipeline()
        pipe.zcard(keys.DEAD_LETTERS)
        pipe.delete(keys.DEAD_LETTERS, keys.DEAD_LETTER_JOBS)
        return int(pipe.execute()[0])
