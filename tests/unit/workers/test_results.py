"""Results built from what happened to a job: a micro-batch's share of the bill, failures."""

from __future__ import annotations

from shared.errors import ProviderRejected
from shared.jobs import ChatJob, ChatRequest, JobStatus, Timings, Usage
from workers.provider import Choice, ProviderReply
from workers.results import choice_result, failed_result


def job() -> ChatJob:
    return ChatJob(request=ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]))


def test_each_choice_gets_its_own_text_and_a_share_of_the_prompt():
    reply = ProviderReply(
        content="One two",
        finish_reason="stop",
        usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        choices=[Choice("One two", "stop"), Choice("Three", "length"), Choice("Four", "stop")],
    )
    results = [choice_result(job(), reply, i, 3, Timings(), 1) for i in range(3)]
    assert [r.content for r in results] == ["One two", "Three", "Four"]
    assert [r.finish_reason for r in results] == ["stop", "length", "stop"]
    assert sum(r.usage.prompt_tokens for r in results) == 10  # billed once, split
    assert all(r.batch_size == 3 and r.status is JobStatus.done for r in results)


def test_a_failure_keeps_the_errors_type_code_and_message():
    result = failed_result(job(), ProviderRejected("bad request", status=400), Timings(), 2)
    assert result.status is JobStatus.failed and result.attempts == 2
    assert (result.error.type, result.error.code) == ("invalid_request_error", "provider_rejected")
    assert result.error.message == "bad request"
