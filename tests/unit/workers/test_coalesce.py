"""Which requests count as identical, and may share one answer."""

from __future__ import annotations

from chatq.shared.completion import text_completion
from chatq.shared.jobs import ChatRequest, ChatResult, JobStatus
from chatq.workers.coalesce import LRU_TTL_S, Coalescer, request_key
from redis import Redis


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


def test_a_process_keeps_an_answer_in_memory_for_at_most_30_s():
    """Answers removed from Redis (their user erased) stop being served from memory soon."""
    now = [1000.0]
    coalescer = Coalescer(Redis(), cache_ttl_s=3600, lease_s=30, clock=lambda: now[0])
    coalescer.remember(
        "key", ChatResult(job_id="job_1", status=JobStatus.done, completion=text_completion("hi"))
    )
    now[0] += LRU_TTL_S - 1
    assert coalescer.has_local("key")
    now[0] += 2
    assert not coalescer.has_local("key")
