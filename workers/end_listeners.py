"""What must happen when a job ends, each told by ``JobLifecycle``: the session gets the
turn (just before the end shows), the user's index the cache key, the tenant's quota the
tokens, the metrics and logs the outcome, and the webhook (if any) is queued."""

from __future__ import annotations

import logging
from collections.abc import Callable

from chatq.shared.job_state.scheduling import reserved_tokens
from chatq.shared.jobs import ChatJob, ChatResult, JobStatus
from chatq.shared.sessions import SessionStore, UserStore
from chatq.shared.store import JobStore
from chatq.workers.lifecycle import JobEnd
from chatq.workers.results import record_end_metrics

log = logging.getLogger("chatq.worker")


class SessionTurns:
    """Appends a done job's turn to its session, before the job shows as done: the caller's
    next turn, sent the moment this one ends, finds it in the history."""

    def __init__(self, sessions: SessionStore):
        self.sessions = sessions

    def job_ended(self, end: JobEnd) -> None:
        if end.result.status is JobStatus.done and end.job.request.session_id is not None:
            self.sessions.record_answer(end.job, end.result)


class UserIndex:
    """Notes a cached answer under its user, so erasing the user erases it."""

    def __init__(self, users: UserStore):
        self.users = users

    def job_ended(self, end: JobEnd) -> None:
        job = end.job
        done = end.result.status is JobStatus.done
        if done and job.request.user is not None and end.cached_as is not None:
            self.users.note_cache_key(job.tenant, job.request.user, end.cached_as)


class TenantTokens:
    """Settles what a tenant's job reserved on its daily quota when it was accepted to what
    its call used: a job answered without a call (cached, shared), failed or cancelled gives
    it all back."""

    def __init__(self, store: JobStore):
        self.store = store

    def job_ended(self, end: JobEnd) -> None:
        job, result = end.job, end.result
        if not job.tenant:
            return
        usage = result.usage
        paid = usage is not None and not (result.cached or result.coalesced_with)
        used = usage.total_tokens if paid and usage is not None else 0
        change = used - reserved_tokens(job)
        if change:  # on the counter of the day the reservation went to
            self.store.count_tenant_tokens(job.tenant, change, job.created_at)


class EndMetrics:
    """Counts the end in Prometheus and logs it (no user text)."""

    def job_ended(self, end: JobEnd) -> None:
        job, result = end.job, end.result
        record_end_metrics(job, result)
        timings = result.timings
        took = (timings.finished_at or 0) - (timings.started_at or timings.finished_at or 0)
        log.info("job %s %s in %.1f ms", job.id, result.status.value, took * 1000)


class Webhooks:
    """Queues the call of the job's webhook, if it asked for one."""

    def __init__(self, send: Callable[[ChatJob, ChatResult], None]):
        self.send = send

    def job_ended(self, end: JobEnd) -> None:
        if end.job.webhook_url:
            self.send(end.job, end.result)
