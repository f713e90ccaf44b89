"""The Celery tasks, under stable names that any Celery client can send."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from celery import Task
from chatq.shared import tracing
from chatq.shared.celery_config import (
    TASK_CHAT,
    TASK_WEBHOOK,
    chat_argsrepr,
    webhook_argsrepr,
)
from chatq.shared.errors import InvalidJob
from chatq.shared.jobs import ChatJob, ChatResult, JobError, JobStatus, Priority
from chatq.shared.logs import job_id_var, request_id_var
from chatq.shared.outage import REDIS_DOWN, wait_for_redis
from chatq.shared.settings import get_settings
from chatq.shared.webhook_targets import webhook_policy
from chatq.workers.celery_app import app
from chatq.workers.lifecycle import REDIS_PATIENCE_S, JobLifecycle
from chatq.workers.limiter import Deferred
from chatq.workers.recovery import loop_round
from chatq.workers.retry import backoff_delay
from chatq.workers.runner import ChatRunner
from chatq.workers.webhooks import WebhookSender
from chatq.workers.wiring import build_runner
from opentelemetry.trace import Span
from pydantic import ValidationError

log = logging.getLogger("chatq.worker")

_runner: ChatRunner | None = None
_rng = random.Random()
WEBHOOK_MAX_DELAY_S = 300.0
_runner_lock = threading.Lock()


def get_runner() -> ChatRunner:
    """The process's runner, built on first use (after a prefork child starts)."""
    global _runner
    with _runner_lock:
        if _runner is None:
            tracing.configure("chatq-worker")
            _runner = build_runner(
                get_settings(),
                send_webhook=send_webhook,
                on_reload_error=lambda exc: log.error("deployments not reloaded: %s", exc),
            )
            threading.Thread(
                target=renew_claims,
                args=(_runner.lifecycle,),
                name="chatq-lease-renewal",
                daemon=True,
            ).start()
        return _runner


def send_webhook(job: ChatJob, result: ChatResult) -> None:
    """Queues the call of the job's webhook."""
    if job.webhook_url:
        app.send_task(
            TASK_WEBHOOK,
            args=[job.id, job.webhook_url],
            queue=get_settings().interactive_queue,
            argsrepr=webhook_argsrepr(job.id),
            kwargsrepr="{}",
        )


_webhooks: WebhookSender | None = None


def get_webhooks() -> WebhookSender:
    global _webhooks
    store = get_runner().lifecycle.store
    with _runner_lock:
        if _webhooks is None:
            settings = get_settings()
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
            _webhooks = WebhookSender(
                store,
                secret,
                policy=webhook_policy(settings),
                timeout_s=settings.webhook_timeout_s,
            )
        return _webhooks


@app.task(name=TASK_WEBHOOK, bind=True, ignore_result=True, max_retries=None)
def webhook(self: Task, job_id: str, url: str) -> None:
    """Calls a finished job's webhook; retried with exponential backoff (full jitter, the
    receiver's Retry-After honoured) up to ``CHATQ_WEBHOOK_MAX_RETRIES`` times."""
    sender = get_webhooks()
    if sender.deliver(job_id, url) != "retry":
        return
    attempt = self.request.retries + 1
    if attempt > get_settings().webhook_max_retries:
        sender.give_up(job_id)
        return
    delay = backoff_delay(
        attempt, sender.retry_after, _rng, initial_delay=1.0, max_delay=WEBHOOK_MAX_DELAY_S
    )
    raise self.retry(
        countdown=delay, max_retries=None, argsrepr=webhook_argsrepr(job_id), kwargsrepr="{}"
    )


def renew_claims(lifecycle: JobLifecycle) -> None:
    """Keeps this process's claims on its running jobs alive, so no other worker runs them.
    It never stops: an error is logged and counted, and the next round tries again."""
    while True:
        time.sleep(lifecycle.lease_s / 3)
        with loop_round("lease_renewal"):
            lifecycle.renew()


@app.task(
    name=TASK_CHAT,
    bind=True,
    ignore_result=True,
    max_retries=None,
    Strategy="chatq.workers.sampled_events:sampled_strategy",
)
def chat(self: Task, job: dict[str, Any]) -> None:
    """Runs one chat job; its result goes to the job record and event stream, not Celery's."""
    try:
        parsed = ChatJob.model_validate(job)
    except ValidationError as exc:
        reject_malformed(job, exc)
        return
    runner = get_runner()
    lifecycle = runner.lifecycle
    if self.request.hostname and lifecycle.worker_name != self.request.hostname:
        lifecycle.worker_name = self.request.hostname  # this worker's node name, for the records
    job_token = job_id_var.set(parsed.id)
    request_token = request_id_var.set(parsed.request_id)
    queue = (self.request.delivery_info or {}).get("routing_key")
    try:
        attributes = run_attributes(parsed, queue) if tracing.enabled() else {}
        with tracing.queued_then_run(parsed.traceparent, parsed.created_at, attributes) as run:
            try:
                ended = runner.run(parsed)
            except Deferred:
                run.set_attribute("chatq.job.outcome", "deferred")
                raise
            if run.is_recording():
                traced_end(run, ended)
    except REDIS_DOWN:
        # Redis went away before the job was recorded as ended: once it is back, send the
        # job again (its claim keeps it from running twice) rather than lose the message.
        log.warning("job %s: redis unreachable; waiting for it to come back", parsed.id)
        if not wait_for_redis(lifecycle.store.redis, patience_s=REDIS_PATIENCE_S):
            raise
        raise self.retry(
            countdown=1, max_retries=None, argsrepr=chat_argsrepr(job), kwargsrepr="{}"
        ) from None
    except Deferred as deferred:
        # Aside in Redis until its slot is near (in the fair scheduler, in its place), freeing
        # this thread and the message: a worker that dies holds nothing it is not running.
        store = lifecycle.store
        if deferred.busy:
            if store.defer(parsed.id, deferred.delay_s):
                return
        elif store.set_aside(parsed, queue or queue_of(parsed), deferred.delay_s):
            return
        raise self.retry(
            countdown=deferred.delay_s,
            max_retries=None,
            argsrepr=chat_argsrepr(job),
            kwargsrepr="{}",
        ) from None
    finally:
        job_id_var.reset(job_token)
        request_id_var.reset(request_token)


def queue_of(job: ChatJob) -> str:
    """The queue a job of its priority rides, for one whose message did not say."""
    settings = get_settings()
    bulk = job.request.priority is Priority.bulk
    return settings.bulk_queue if bulk else settings.interactive_queue


def run_attributes(job: ChatJob, queue: str | None) -> dict[str, str]:
    attributes = {
        "chatq.job.id": job.id,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": job.request.model,
    }
    if queue:
        attributes["messaging.destination.name"] = queue
    return attributes


def traced_end(run: Span, ended: ChatResult | None) -> None:
    """How the job ended, on its run's span (None: it had ended already, or was left)."""
    if ended is None:
        run.set_attribute("chatq.job.outcome", "not_run")
        return
    run.set_attribute("chatq.job.outcome", ended.status.value)
    if ended.status is JobStatus.failed and ended.error is not None:
        tracing.failed(run, ended.error.code or ended.error.type, ended.error.code)


def reject_malformed(job: Any, exc: ValidationError) -> None:
    """Ends a job whose message does not parse (sent by hand or by another client) as failed."""
    job_id = job.get("id") if isinstance(job, dict) else None
    if not isinstance(job_id, str) or not job_id:
        log.error("dropped a chat task with no usable job id: %s", exc.errors()[:3])
        return
    error = InvalidJob(f"Malformed job: {exc.errors()[:3]}")
    result = ChatResult(
        job_id=job_id,
        status=JobStatus.failed,
        error=JobError(type="invalid_request_error", code=error.code, message=error.message),
    )
    get_runner().lifecycle.store.finish(result)


__all__ = ["chat", "webhook"]
