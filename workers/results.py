"""The results a worker ends jobs with, built from what happened, and the metrics it counts
for each job it ends."""

from __future__ import annotations

from chatq.shared import metrics
from chatq.shared.completion import Completion, Usage, text_completion
from chatq.shared.errors import ChatqError, ProviderRejected, http_status_and_type
from chatq.shared.jobs import ChatJob, ChatResult, JobError, JobStatus, Timings
from chatq.shared.tokens import count_prompt_tokens, count_text_tokens
from chatq.workers.hooks import Answered
from chatq.workers.streamed_answer import StreamedAnswer


def failed_result(job: ChatJob, exc: ChatqError, timings: Timings, attempts: int) -> ChatResult:
    return ChatResult(
        job_id=job.id,
        status=JobStatus.failed,
        model=job.request.model,
        timings=timings,
        attempts=attempts,
        error=job_error(exc),
    )


def job_error(exc: ChatqError) -> JobError:
    """The error a job ends with; a provider's own refusal keeps its status."""
    status, error_type = http_status_and_type(exc)
    passed_on = isinstance(exc, ProviderRejected) and exc.error_type is not None
    return JobError(
        type=error_type,
        code=exc.code,
        message=exc.message,
        param=exc.param,
        status=status if passed_on else None,
    )


def done_result(
    job: ChatJob, completion: Completion, timings: Timings, attempts: int
) -> ChatResult:
    return ChatResult(
        job_id=job.id,
        status=JobStatus.done,
        model=job.request.model,
        completion=completion,
        timings=timings,
        attempts=attempts,
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
    result = done_result(job, text_completion(answered.text), timings, started)
    result.answered_by = answered.by
    return result


def gathered_result(
    job: ChatJob,
    answer: Completion,
    index: int,
    size: int,
    timings: Timings,
    started: int,
) -> ChatResult:
    """Job ``index`` of a gathered call's result: its own choice (as choice 0), and its share
    of the bill (the prompt, paid once, is split evenly)."""
    choice = answer.choices[index].model_copy(update={"index": 0})
    usage = None
    if answer.usage is not None:
        billed = answer.usage.prompt_tokens
        prompt = billed // size + (billed % size if index == 0 else 0)
        message = choice.message
        completion = count_text_tokens(message.content or "") + sum(
            count_text_tokens((call.function.arguments or "") if call.function else "")
            for call in message.tool_calls or ()
        )
        usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
    own = answer.model_copy(update={"choices": [choice], "usage": usage})
    result = done_result(job, own, timings, started)
    result.gathered = size
    return result


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
        how = "gathered" if (result.gathered or 1) > 1 else "miss"
    metrics.CACHE_LOOKUPS.labels(model, how).inc()
    if how in ("miss", "gathered") and result.usage is not None:
        metrics.TOKENS.labels(model, "prompt").inc(result.usage.prompt_tokens)
        metrics.TOKENS.labels(model, "completion").inc(result.usage.completion_tokens)


def cancelled_mid_call(
    job: ChatJob,
    error: ChatqError,
    timings: Timings,
    answer: StreamedAnswer | None,
    now: float,
) -> ChatResult:
    """A job cancelled while its call ran, which was stopped: cancelled, with the answer it
    had so far and the tokens used (the prompt, and what was streamed before the stop)
    counted here, as the provider's own count never came."""
    prompt = count_prompt_tokens(
        m.content for m in job.request.messages if isinstance(m.content, str)
    )
    partial = answer.completion() if answer is not None and not answer.empty else None
    first = partial.first if partial is not None else None
    text = first.message.content if first is not None else None
    completion = partial if partial is not None else text_completion("")
    completion_tokens = count_text_tokens(text) if isinstance(text, str) else 0
    completion.usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        total_tokens=prompt + completion_tokens,
    )
    timings.finished_at = now
    return ChatResult(
        job_id=job.id,
        status=JobStatus.cancelled,
        model=job.request.model,
        completion=completion,
        error=JobError(type="cancelled", code=error.code or "job_cancelled", message=error.message),
        timings=timings,
    )
