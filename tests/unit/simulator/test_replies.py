"""Simulator replies: deterministic, one token per piece, honouring max_tokens, exact usage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.tokens import count_prompt_tokens, count_text_tokens
from simulator.replies import (
    MIN_REPLY_TOKENS,
    VOCABULARY,
    generated_pieces,
    reply_for,
    token_pieces,
)


def body(text: str = "hi", **extra):
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def test_vocabulary_words_are_distinct_single_tokens():
    assert len(set(VOCABULARY)) == len(VOCABULARY) == 64
    assert all(
        count_text_tokens(f" {w}") == count_text_tokens(w.capitalize()) == 1 for w in VOCABULARY
    )


def test_same_request_same_reply_and_different_requests_differ():
    a = reply_for(body("one"), echo=False, max_reply_tokens=64)
    assert a == reply_for(body("one"), echo=False, max_reply_tokens=64)
    assert a.content != reply_for(body("two"), echo=False, max_reply_tokens=64).content
    warmer = reply_for(body("one", temperature=1.5), echo=False, max_reply_tokens=64)
    assert warmer.content != a.content
    other_model = reply_for({**body("one"), "model": "n"}, echo=False, max_reply_tokens=64)
    assert other_model.content != a.content


def test_a_generated_reply_is_a_sentence():
    reply = reply_for(body(), echo=False, max_reply_tokens=64)
    assert reply.content[0].isupper() and reply.content.endswith(".")
    assert reply.finish_reason == "stop"


@given(text=st.text(max_size=40), longest=st.integers(1, 200))
def test_natural_length_is_between_the_minimum_and_max_reply_tokens(text, longest):
    pieces = generated_pieces(body(text), longest)
    assert min(MIN_REPLY_TOKENS, longest) <= len(pieces) <= longest
    assert all(count_text_tokens(p) == 1 for p in pieces)


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


def test_max_completion_tokens_wins_over_max_tokens():
    request = body(max_tokens=10, max_completion_tokens=3)
    assert reply_for(request, echo=False, max_reply_tokens=64).completion_tokens == 3


@given(text=st.text(max_size=80))
def test_token_pieces_rebuild_the_text_one_token_each(text):
    pieces = token_pieces(text)
    assert all(count_text_tokens(p) == 1 for p in pieces)
    assert len(pieces) == count_text_tokens(text)
    assert "".join(pieces) == (text if text.strip() else "")


def test_token_pieces_split_long_words_as_shared_tokens_counts_them():
    assert token_pieces("Hello, extraordinary world!") == [
        "Hell",
        "o",
        ",",
        " extr",
        "aord",
        "inar",
        "y",
        " worl",
        "d",
        "!",
    ]


def test_echo_repeats_the_last_user_message_and_honours_max_tokens():
    request = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "say it back"}]},
        ],
    }
    assert reply_for(request, echo=True, max_reply_tokens=64).content == "say it back"
    cut = reply_for({**request, "max_tokens": 2}, echo=True, max_reply_tokens=64)
    assert (cut.content, cut.finish_reason) == ("say it", "length")


def test_usage_counts_the_prompt_with_shared_tokens():
    request = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is a queue?"},
        ],
    }
    reply = reply_for(request, echo=False, max_reply_tokens=64)
    usage = reply.usage()
    prompt = count_prompt_tokens(["Be brief.", "What is a queue?"])
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        prompt,
        len(reply.pieces),
        prompt + len(reply.pieces),
    )


def test_usage_carries_openai_token_details():
    usage = reply_for(body(), echo=False, max_reply_tokens=64).usage()
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert usage["completion_tokens_details"] == {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
