"""The results a worker ends jobs with, built from what happened, and the metrics it counts
for each job it ends."""

from __future__ import annotations

from shared import metrics
from shared.errors import ChatqError, http_status_and_type
from shared.jobs import ChatJob, ChatResult, JobError, JobStatus, Timings, Usage
from shared.tokens import count_text_tokens
from workers.hooks import Answered
from workers.provider import ProviderReply


def failed_result(job: ChatJob, exc: ChatqError, timings: Timings, attempts: int) -> ChatResult:
    _, error_type = http_status_and_type(exc)
    return ChatResult(
        job_id=job.id,
        status=JobStatus.failed,
        model=job.request.model,
        timings=timings,
        attempts=attempts,
        error=JobError(type=error_type, code=exc.code, message=exc.message),
    )


def deadline_result(job: ChatJob, now: float) -> ChatResult:
    return ChatResult(
        job_id=job.id,
        status=JobStatus.cancelled,
        model=job.request.model,
        timings=Timings(created_at=job.created_at, finished_at=now),
        error=JobError(
            type="cancelled",
            code="deadline_exceeded",
            message="The job's deadline passed before it could be sent; it was not sent.",
        ),
    )


def hook_answer(job: ChatJob, answered: Answered, timings: Timings, started: int) -> ChatResult:
    """A job a hook answered without the provider."""
    return ChatResult(
        job_id=job.id,
        status=JobStatus.done,
        model=job.request.model,
        content=answered.text,
        finish_reason="stop",
        usage=Usage(),
        timings=timings,
        attempts=started,
        answered_by=answered.by,
    )


def choice_result(
    job: ChatJob,
    reply: ProviderReply,
    index: int,
    size: int,
    timings: Timings,
    started: int,
) -> ChatResult:
    """Job ``index`` of a micro-batch's result: its own choice, and its share of the bill
    (the prompt, paid once, is split evenly)."""
    choice = reply.choices[index]
    usage = None
    if reply.usage is not None:
        prompt = reply.usage.prompt_tokens // size + (
            reply.usage.prompt_tokens % size if index == 0 else 0
        )
        completion = count_text_tokens(choice.content)
        usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
    return ChatResult(
        job_id=job.id,
        status=JobStatus.done,
        model=job.request.model,
        content=choice.content,
        finish_reason=choice.finish_reason,
        usage=usage,
        timings=timings,
        attempts=started,
        batch_size=size,
    )


def record_end_metrics(job: ChatJob, result: ChatResult) -> None:
    """Counts a job that this process ended, and how it got its answer."""
    model, queue = job.request.model, job.request.priority.value
    metrics.JOBS_FINISHED.labels(model, queue, result.status.value).inc()
    timings = result.timings
    if timings.finished_at is not None:
        metrics.JOB_LATENCY.labels(model, queue).observe(timings.finished_at - job.created_at)
    if timings.first_token_at is not None:
        metrics.TIME_TO_FIRST_TOKEN.labels(model, queue).observe(
            timings.first_token_at - job.created_at
        )
    if result.status is not JobStatus.done:
        return
    if result.cached:
        how = "cached"
    elif result.coalesced_with:
        how = "coalesced"
    elif result.answered_by:
        how = "hook"
    else:
        how = "batched" if (result.batch_size or 1) > 1 else "miss"
    metrics.CACHE_LOOKUPS.labels(model, how).inc()
    if how in ("miss", "batched") and result.usage is not None:
        metrics.TOKENS.labels(model, "prompt").inc(result.usage.prompt_tokens)
        metrics.TOKENS.labels(model, "completion").inc(result.usage.completion_tokens)
