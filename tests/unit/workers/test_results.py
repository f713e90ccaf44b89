"""Results built from what happened to a job: a gathered call's share of the bill, failures."""

from __future__ import annotations

from chatq.shared.completion import Completion
from chatq.shared.errors import ProviderRejected, ProviderUnavailable
from chatq.shared.jobs import ChatJob, ChatRequest, JobStatus, Timings
from chatq.workers.results import failed_result, gathered_result


def job() -> ChatJob:
    return ChatJob(request=ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]))


def test_each_job_of_a_gathered_call_gets_its_own_choice_and_a_share_of_the_prompt():
    answer = Completion.model_validate(
        {
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": f}
                for i, (text, f) in enumerate(
                    [("One two", "stop"), ("Three", "length"), ("Four", "stop")]
                )
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            "system_fingerprint": "fp",
        }
    )
    results = [gathered_result(job(), answer, i, 3, Timings(), 1) for i in range(3)]
    assert [r.content for r in results] == ["One two", "Three", "Four"]
    assert [r.finish_reason for r in results] == ["stop", "length", "stop"]
    assert all(r.completion.choices[0].index == 0 for r in results)  # each its own choice 0
    assert all(r.completion.system_fingerprint == "fp" for r in results)
    assert sum(r.usage.prompt_tokens for r in results) == 10  # billed once, split
    assert all(r.gathered == 3 and r.status is JobStatus.done for r in results)


def test_a_failure_keeps_chatqs_type_code_and_message():
    result = failed_result(job(), ProviderUnavailable("down", status=503), Timings(), 2)
    assert result.status is JobStatus.failed and result.attempts == 2
    assert (result.error.type, result.error.code) == ("api_error", "provider_unavailable")
    assert result.error.message == "down" and result.error.status is None


def test_a_providers_refusal_keeps_its_status_type_code_and_param():
    refusal = ProviderRejected(
        "This model's maximum context length is 10 tokens.",
        status=400,
        error_type="invalid_request_error",
        code="context_length_exceeded",
        param="messages",
    )
    error = failed_result(job(), refusal, Timings(), 1).error
    assert (error.status, error.type, error.code, error.param) == (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
    )
    assert error.message == "This model's maximum context length is 10 tokens."
