"""The simulator's words: one-token vocabulary and pieces, sentences picked by a hash."""

from __future__ import annotations

from chatq.shared.tokens import count_text_tokens
from chatq.simulator.words import MIN_REPLY_TOKENS, VOCABULARY, generated_pieces, token_pieces
from hypothesis import given
from hypothesis import strategies as st


def body(text: str = "hi", **extra):
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def test_vocabulary_words_are_distinct_single_tokens():
    assert len(set(VOCABULARY)) == len(VOCABULARY) == 64
    assert all(
        count_text_tokens(f" {w}") == count_text_tokens(w.capitalize()) == 1 for w in VOCABULARY
    )


@given(text=st.text(max_size=40), longest=st.integers(1, 200))
def test_natural_length_is_between_the_minimum_and_max_reply_tokens(text, longest):
    pieces = generated_pieces(body(text), longest)
    assert min(MIN_REPLY_TOKENS, longest) <= len(pieces) <= longest
    assert all(count_text_tokens(p) == 1 for p in pieces)


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


def test_seed_takes_part_in_the_words():
    plain = generated_pieces(body("same"), 64)
    assert generated_pieces(body("same", seed=1), 64) == generated_pieces(body("same", seed=1), 64)
    assert generated_pieces(body("same", seed=1), 64) != generated_pieces(body("same", seed=2), 64)
    assert generated_pieces(body("same", seed=1), 64) != plain
