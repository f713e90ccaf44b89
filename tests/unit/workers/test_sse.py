"""The SSE parser, fed streams cut at every possible place."""

from __future__ import annotations

from chatq.workers.sse import iter_sse_data
from hypothesis import given
from hypothesis import strategies as st

STREAM = (
    b": keep-alive comment\n\n"
    b'data: {"a": 1}\n\n'
    b"event: message\r\ndata: first line\r\ndata: second line\r\n\r\n"
    b"data: [DONE]\n\n"
)
EXPECTED = ['{"a": 1}', "first line\nsecond line", "[DONE]"]


def test_parses_whole_stream():
    assert list(iter_sse_data([STREAM])) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts):
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert list(iter_sse_data(chunks)) == EXPECTED


def test_last_event_without_blank_line_is_kept():
    assert list(iter_sse_data([b"data: tail"])) == ["tail"]


def test_multibyte_characters_split_across_chunks():
    text = "data: héllo 你好\n\n".encode()
    assert list(iter_sse_data([text[:9], text[9:15], text[15:]])) == ["héllo 你好"]
