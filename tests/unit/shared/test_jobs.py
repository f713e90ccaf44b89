"""Job models: what a valid request is, and what is forwarded to the provider."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.jobs import ChatJob, ChatRequest, JobStatus, Priority


def request(**overrides):
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}]}
    return ChatRequest.model_validate({**body, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {"messages": []},
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "tool", "content": "42"}]},
        {"max_tokens": 0},
        {"max_tokens": -5},
        {"temperature": 3},
        {"n": 2},
        {"model": ""},
    ],
)
def test_invalid_requests_are_refused(overrides):
    with pytest.raises(ValidationError):
        request(**overrides)


def test_provider_body_keeps_openai_fields_and_drops_chatq_ones():
    req = request(session_id="s1", priority="bulk", metadata={"a": "b"}, tools=[{"x": 1}])
    body = req.provider_body(stream=True)
    assert body["tools"] == [{"x": 1}]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert not {"session_id", "priority", "metadata"} & body.keys()
    assert req.priority is Priority.bulk


def test_content_parts_text_and_images():
    msg = request(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                    {"type": "text", "text": "this?"},
                ],
            }
        ]
    ).messages[0]
    assert msg.text() == "what is this?"


def test_job_round_trips_as_json():
    job = ChatJob(request=request(stream=True))
    assert ChatJob.model_validate_json(job.model_dump_json()) == job
    assert job.id.startswith("job_")


def test_terminal_statuses():
    assert {s for s in JobStatus if s.is_terminal} == {"done", "failed", "cancelled"}
