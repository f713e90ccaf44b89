"""Every Redis key and channel chatq uses, on one screen.

chatq:job:{id}         hash    the job record: status, attempts, timings, result (JSON)
chatq:events:{id}      stream  the job's events, in order: deltas, then one end event
chatq.interactive      list    Celery queue for chat traffic (kombu owns its layout)
chatq.bulk             list    Celery queue for bulk work
"""

from __future__ import annotations

PREFIX = "chatq"


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def events_key(job_id: str) -> str:
    return f"{PREFIX}:events:{job_id}"


def deployment_key(name: str, part: str) -> str:
    """A key of deployment ``name``: rpm, tpm, inflight, paused, failures, cooldown, bad_keys."""
    return f"{PREFIX}:dep:{name}:{part}"
