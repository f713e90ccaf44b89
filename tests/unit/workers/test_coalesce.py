"""Which requests count as identical, and may share one answer."""

from __future__ import annotations

from shared.jobs import ChatRequest
from workers.coalesce import request_key


def request(content: str = "What  is\na queue?", **extra) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": content}], **extra)


def test_identical_requests_share_a_key_whatever_their_spacing_or_streaming():
    assert request_key(request()) == request_key(request("What is a queue?", stream=True))
    assert request_key(request()) == request_key(request(session_id="s", priority="bulk"))


def test_generation_parameters_tell_requests_apart():
    assert request_key(request()) != request_key(request(max_tokens=5))
    assert request_key(request()) != request_key(request("Something else"))
    assert request_key(request()) != request_key(
        ChatRequest(model="other", messages=[{"role": "user", "content": "What is a queue?"}])
    )


def test_sampled_requests_share_only_when_allowed():
    assert request_key(request(temperature=0.7)) is None
    assert request_key(request(temperature=0.7, coalesce=True)) is not None
    assert request_key(request(temperature=0)) is not None
    assert request_key(request(coalesce=False)) is None
