"""Simulator replies: deterministic, honouring max_tokens, with exact usage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.tokens import count_text_tokens
from simulator.replies import VOCABULARY, reply_for


def body(text: str = "hi", **extra):
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def test_same_request_same_reply_and_different_requests_differ():
    a = reply_for(body("one"), echo=False, max_reply_tokens=64)
    assert a == reply_for(body("one"), echo=False, max_reply_tokens=64)
    assert a.content != reply_for(body("two"), echo=False, max_reply_tokens=64).content


def test_every_piece_is_one_token():
    assert all(count_text_tokens(f" {word}") == 1 for word in VOCABULARY)


@given(text=st.text(max_size=50), max_tokens=st.one_of(st.none(), st.integers(1, 80)))
def test_max_tokens_is_never_exceeded_and_length_is_reported(text, max_tokens):
    reply = reply_for(body(text, max_tokens=max_tokens), echo=False, max_reply_tokens=64)
    natural = reply_for(body(text), echo=False, max_reply_tokens=64)
    if max_tokens is None or natural.completion_tokens <= max_tokens:
        assert reply.finish_reason == "stop" and reply == natural
    else:
        assert reply.finish_reason == "length"
        assert reply.completion_tokens == max_tokens
        assert natural.content.startswith(reply.content)


def test_echo_repeats_the_last_user_message():
    request = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "repeat after me"},
        ],
    }
    assert reply_for(request, echo=True, max_reply_tokens=64).content == "repeat after me"


def test_usage_adds_up():
    usage = reply_for(body(), echo=False, max_reply_tokens=64).usage()
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
