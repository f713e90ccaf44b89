"""The jobs that have not ended, as ``chatq.workers.recovery`` checks on them: the pending set (job
id -> when to check it), the deferred set (job id -> when to send it again), the fields of a
record that say whether and how to send a job again, and whose turn it is to sweep."""

from __future__ import annotations

from collections.abc import Iterable

from chatq.shared import keys
from chatq.shared.job_state import Command, check_time
from chatq.shared.scripts import ScriptCall, lua

SWEEP_FIELDS = ("status", "lease_until", "queue", "payload")
RESEND_FIELDS = ("status", "queue", "payload")


def due(now: float, limit: int) -> Command:
    """The pending jobs whose check is due."""
    return Command("zrangebyscore", (keys.PENDING, "-inf", now), {"start": 0, "num": limit})


def sweep_rows(job_ids: Iterable[str]) -> list[Command]:
    """Each job's ``SWEEP_FIELDS``."""
    return [Command("hmget", (keys.job_key(job_id), *SWEEP_FIELDS)) for job_id in job_ids]


def settle(ended: list[str], check_at: dict[str, float]) -> list[Command]:
    """Drops the jobs that ended and moves the others' checks (XX: a job that ended
    meanwhile left the set and stays out)."""
    commands = [Command("zrem", (keys.PENDING, *ended))] if ended else []
    if check_at:
        scores = {job_id: check_time(at) for job_id, at in check_at.items()}
        commands.append(Command("zadd", (keys.PENDING, scores), {"xx": True}))
    return commands


def due_deferred(now: float, limit: int) -> Command:
    return Command("zrangebyscore", (keys.DEFERRED, "-inf", now), {"start": 0, "num": limit})


def take_deferred(job_id: str) -> Command:
    """Takes a due job out of the deferred set; replies 0 if another worker took it."""
    return Command("zrem", (keys.DEFERRED, job_id))


def undefer(job_id: str, queue: str, message: str) -> ScriptCall:
    """Moves a due job from the deferred set to its queue as ``message`` (a Celery message,
    ``chatq.shared.broker``) in one step; replies as ``undefer_job.lua`` says."""
    return ScriptCall(
        lua("chatq.shared.job_state", "undefer_job.lua"),
        [keys.DEFERRED, keys.job_key(job_id), queue],
        [job_id, message],
    )


def resend_row(job_id: str) -> Command:
    """The job's ``RESEND_FIELDS``."""
    return Command("hmget", (keys.job_key(job_id), *RESEND_FIELDS))


def sweep_turn(node: str, interval_s: float) -> Command:
    """Takes this interval's sweep for ``node``; replies None if another worker has it."""
    return Command("set", (keys.SWEEPER, node), {"nx": True, "px": int(interval_s * 1000)})
