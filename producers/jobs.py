"""Turning a caller's arguments into a validated job, and a failed result into an exception."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Celery
from chatq.producers.limits import RequestLimits
from chatq.shared import idempotency, metrics, tracing
from chatq.shared.celery_config import (
    CELERY_AMQP,
    TASK_WEBHOOK,
    celery_config,
    queue_for,
    webhook_argsrepr,
)
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.errors import (
    ERRORS_BY_CODE,
    ChatqError,
    InvalidJob,
    JobCancelled,
    ModelNotFound,
    ProviderError,
    ProviderRejected,
    QueueUnavailable,
    short,
)
from chatq.shared.jobs import ChatJob, ChatRequest, ChatResult, EmbeddingInput, JobStatus
from chatq.shared.logs import request_id_var
from chatq.shared.outage import REDIS_DOWN
from chatq.shared.redis_clients import redact
from chatq.shared.settings import Settings
from chatq.shared.store import JobRecord
from chatq.shared.webhook_targets import resolve_target, webhook_policy
from kombu.exceptions import OperationalError
from pydantic import ValidationError

Messages = str | list[dict[str, Any]]


def build_request(
    messages: Messages, model: str | None, settings: Settings, **params: Any
) -> ChatRequest:
    """A validated request; a bare string becomes one user message."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    try:
        return ChatRequest.model_validate(
            {"model": model or settings.default_model, "messages": messages, **params}
        )
    except ValidationError as exc:
        raise InvalidJob(describe_validation_errors(exc.errors())) from exc


def check_model(request: ChatRequest, models: list[str]) -> None:
    """Refuses a model no deployment serves, naming the ones that are served."""
    if request.model not in models:
        raise ModelNotFound(
            f"The model {short(request.model)} does not exist or you do not have access to it. "
            f"Available models: {', '.join(models)}.",
            param="model",
        )


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One readable sentence per problem, naming the field to fix."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error["loc"] if p != "body") or "body"
        parts.append(f"{where}: {error['msg']}")
    return "Invalid request: " + "; ".join(parts)


def prepare_job(
    settings: Settings,
    deployments: DeploymentRegistry,
    messages: Messages | None,
    model: str | None,
    request: ChatRequest | None,
    job_id: str | None,
    params: dict[str, Any],
    *,
    tenant: str | None = None,
    webhook_url: str | None = None,
    privacy: bool = True,
    traceparent: str | None = None,
    idempotency_key: str | None = None,
    embedding: EmbeddingInput | None = None,
) -> tuple[ChatJob, str]:
    """The validated job a ``submit`` call stands for, and the queue it goes to. Its trace
    is ``traceparent``, else the current span's (when tracing is on). With an
    ``idempotency_key``, its id is the key's for the tenant and it carries its request's
    hash (``chatq.shared.idempotency``)."""
    if request is None:
        if messages is None:
            raise TypeError("submit() needs messages or a request")
        request = build_request(messages, model, settings, **params)
    check_model(request, deployments.aliases())
    RequestLimits.of(settings).check(request)
    extra: dict[str, Any] = {
        "tenant": tenant,
        "webhook_url": webhook_url,
        "privacy": privacy,
        "request_id": request_id_var.get(),
        "traceparent": traceparent or tracing.traceparent(),
        "embedding": embedding,
    }
    if idempotency_key is not None:
        if job_id is not None:
            raise InvalidJob("Give a job id or an idempotency key, not both.")
        job_id = idempotency.scoped_id("job", tenant, idempotency.check_key(idempotency_key))
        sent = request.model_dump(mode="json", exclude_unset=True)
        asked = embedding.model_dump(mode="json") if embedding is not None else None
        extra["request_hash"] = idempotency.request_hash([sent, webhook_url, asked])
    if job_id is not None:
        extra["id"] = job_id
    job = ChatJob(request=request, **extra)
    return job, queue_for(job.request.priority, settings)


def check_retry(job: ChatJob, record: JobRecord) -> None:
    """A job whose idempotency key's id was taken: a retry of the same request, or
    ``IdempotencyKeyReused``."""
    idempotency.check_same(record.request_hash, job.request_hash or "")


@contextmanager
def queue_errors(settings: Settings) -> Iterator[None]:
    """Turns an unreachable Redis while submitting into ``QueueUnavailable`` (503)."""
    try:
        yield
    except (*REDIS_DOWN, OperationalError) as exc:
        where = redact(settings.effective_redis_url)
        raise QueueUnavailable(
            f"The job queue (Redis at {where}) cannot be reached: {exc}. The job was not "
            "enqueued; retry shortly."
        ) from exc
    except TimeoutError as exc:  # no answer in CHATQ_SUBMIT_TIMEOUT_S: a partition, say
        where = redact(settings.effective_redis_url)
        raise QueueUnavailable(
            f"The job queue (Redis at {where}) did not answer within "
            f"{settings.submit_timeout_s:g} s (CHATQ_SUBMIT_TIMEOUT_S), so the job may or may "
            "not have been enqueued; retry shortly (with the same job id to run it once)."
        ) from exc


def producer_app(settings: Settings) -> Celery:
    """A Celery app used only to send tasks by name; producers never import worker code."""
    app = Celery("chatq-producer", amqp=CELERY_AMQP)
    app.conf.update(celery_config(settings))
    return app


def count_submitted(job: ChatJob) -> None:
    metrics.JOBS_SUBMITTED.labels(job.request.model, job.request.priority.value).inc()


def send_webhook(app: Celery, job_id: str, url: str, settings: Settings) -> None:
    """Queues the call of a job's webhook (for a job the producer itself ended: a cancel)."""
    app.send_task(
        TASK_WEBHOOK,
        args=[job_id, url],
        queue=settings.interactive_queue,
        argsrepr=webhook_argsrepr(job_id),
        kwargsrepr="{}",
        ignore_result=True,
    )


def check_webhook(url: str | None, settings: Settings) -> None:
    """Refuses a webhook this deployment cannot sign, or one pointing where workers must not
    call (an internal address: see ``chatq.shared.webhook_targets``). Resolves the host: callers in
    an event loop run it in a thread."""
    if not url:
        return
    if settings.webhook_secret is None:
        raise InvalidJob(
            "Webhooks are off here: the operator has not set CHATQ_WEBHOOK_SECRET, which "
            "signs them. Poll GET /v1/jobs/{id} instead.",
            param="webhook_url",
        )
    resolve_target(url, webhook_policy(settings))


def error_for_result(result: ChatResult) -> ChatqError:
    """The exception a job that did not finish as done stands for."""
    error = result.error
    if result.status is JobStatus.cancelled:
        return JobCancelled(error.message if error else f"Job {result.job_id} was cancelled.")
    if error is None:
        return ChatqError(f"Job {result.job_id} ended as {result.status.value}")
    if error.status is not None:  # the provider refused the request: as it said it
        return ProviderRejected(
            error.message,
            status=error.status,
            error_type=error.type,
            code=error.code,
            param=error.param,
        )
    fallback = ProviderError if error.type == "api_error" else ChatqError
    return ERRORS_BY_CODE.get(error.code or "", fallback)(
        error.message, code=error.code, param=error.param
    )


def raise_for_result(result: ChatResult) -> ChatResult:
    """The result itself if the job is done, else the error it ended with, raised."""
    if result.status is not JobStatus.done:
        raise error_for_result(result)
    return result
