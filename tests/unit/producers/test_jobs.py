"""Building jobs from caller arguments, and the errors failed jobs stand for."""

from __future__ import annotations

import pytest
from chatq.producers.jobs import (
    build_request,
    check_model,
    error_for_result,
    prepare_job,
    raise_for_result,
)
from chatq.shared import tracing
from chatq.shared.completion import text_completion
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.errors import (
    ChatqError,
    InvalidJob,
    JobCancelled,
    ModelNotFound,
    ProviderRejected,
    ProviderUnavailable,
)
from chatq.shared.jobs import ChatResult, JobError, JobStatus
from chatq.shared.settings import Settings
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SETTINGS = Settings(_env_file=None, models=["sim-mini"])


def test_a_string_becomes_one_user_message_on_the_default_model():
    request = build_request("hi", None, SETTINGS, max_tokens=3)
    assert request.model == "sim-mini"
    assert [(m.role, m.content) for m in request.messages] == [("user", "hi")]


def test_bad_arguments_name_the_field_to_fix():
    with pytest.raises(InvalidJob, match="max_tokens"):
        build_request("hi", None, SETTINGS, max_tokens=0)


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(ModelNotFound, match="sim-mini"):
        check_model(build_request("hi", "gpt-9", SETTINGS), SETTINGS.models)


def failed(code: str | None, error_type: str = "api_error", status=JobStatus.failed):
    return ChatResult(
        job_id="job_1",
        status=status,
        error=JobError(type=error_type, code=code, message="why"),
    )


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (failed("provider_rejected", "invalid_request_error"), ProviderRejected),
        (failed("provider_unavailable"), ProviderUnavailable),
        (failed("stream_diverged"), ChatqError),
        (failed("job_cancelled", "cancelled", JobStatus.cancelled), JobCancelled),
    ],
)
def test_failed_results_become_their_error(result, expected):
    error = error_for_result(result)
    assert isinstance(error, expected)
    assert error.message == "why"
    with pytest.raises(expected):
        raise_for_result(result)


def test_done_results_pass_through():
    done = ChatResult(job_id="job_1", status=JobStatus.done, completion=text_completion("ok"))
    assert raise_for_result(done) is done


CALLER_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_job_carries_the_trace_it_is_submitted_in():
    registry = DeploymentRegistry(SETTINGS)
    given, _ = prepare_job(SETTINGS, registry, "hi", None, None, None, {}, traceparent=CALLER_TRACE)
    assert given.traceparent == CALLER_TRACE
    exporter = InMemorySpanExporter()
    tracing.configure("chatq-test", exporter=exporter)
    try:
        with tracing.span("caller") as current:
            job, _ = prepare_job(SETTINGS, registry, "hi", None, None, None, {})
    finally:
        tracing.shutdown()
    assert job.traceparent is not None
    assert job.traceparent.split("-")[2] == f"{current.get_span_context().span_id:016x}"
    untraced, _ = prepare_job(SETTINGS, registry, "hi", None, None, None, {})
    assert untraced.traceparent is None
