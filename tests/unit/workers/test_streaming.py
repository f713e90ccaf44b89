"""Relaying a stream across retried attempts: consumers never see a piece twice."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chatq.shared.jobs import Timings
from chatq.workers.provider import StreamChunk
from chatq.workers.streamed_answer import StreamedAnswer
from chatq.workers.streaming import ChunkPublisher, StreamDiverged, StreamRelay
from hypothesis import given
from hypothesis import strategies as st


class Sink:
    """Stands in for the job store: keeps what would go to the job's Redis stream."""

    def __init__(self) -> None:
        self.chunks: list[dict[str, Any]] = []
        self.firsts: list[bool] = []

    def append_deltas(self, job_id: str, chunks: list[Any], *, first: bool) -> None:
        for i, chunk in enumerate(chunks):
            self.chunks.append(json.loads(chunk) if isinstance(chunk, str) else chunk)
            self.firsts.append(first and i == 0)

    def consumers_have(self) -> StreamedAnswer:
        answer = StreamedAnswer()
        for chunk in self.chunks:
            answer.add(chunk)
        return answer


def relay(sink: Sink, published: StreamedAnswer | None = None) -> StreamRelay:
    publisher = ChunkPublisher(
        sink,
        lambda: 0.0,
        "job_1",
        Timings(),
        published=published is not None,  # type: ignore[arg-type]
    )
    return StreamRelay(publisher, published=published)


def text(piece: str, index: int = 0) -> StreamChunk:
    data = {"choices": [{"index": index, "delta": {"content": piece}, "finish_reason": None}]}
    return StreamChunk(data, json.dumps(data))


def finish(index: int = 0) -> StreamChunk:
    return StreamChunk({"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]})


def content(answer: StreamedAnswer, index: int = 0) -> str | None:
    return answer.completion().choices[index].message.content


def test_first_attempt_publishes_every_chunk_as_it_came_marking_the_first():
    sink = Sink()
    stream = relay(sink)
    stream.new_attempt()
    for piece in ["Hel", "lo", " world"]:
        stream.feed(text(piece))
    stream.feed(finish())
    assert [c["choices"][0]["delta"] for c in sink.chunks[:3]] == [
        {"content": "Hel"},
        {"content": "lo"},
        {"content": " world"},
    ]
    assert sink.firsts == [True, False, False, False]
    assert stream.finish(1).choices[0].message.content == "Hello world"


def test_the_opening_chunk_goes_out_with_the_first_text_in_one_round_trip():
    sink = Sink()
    stream = relay(sink)
    stream.new_attempt()
    opening = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    stream.feed(StreamChunk(opening))
    assert sink.chunks == []  # it says nothing yet
    stream.feed(text("Hi"))
    assert [c["choices"][0]["delta"] for c in sink.chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]
    assert sink.firsts == [True, False]


def test_retry_publishes_only_what_consumers_lack():
    sink = Sink()
    stream = relay(sink)
    stream.new_attempt()
    stream.feed(text("Hello"))
    stream.feed(text(" wor"))
    stream.new_attempt()
    for piece in ["He", "llo", " world", "!"]:
        stream.feed(text(piece))
    stream.feed(finish())
    assert content(sink.consumers_have()) == "Hello world!"
    assert sink.chunks[2]["choices"][0]["delta"] == {"content": "ld"}
    assert stream.finish(1).choices[0].message.content == "Hello world!"


def test_a_stream_that_ends_early_is_not_an_answer():
    stream = relay(Sink())
    stream.new_attempt()
    stream.feed(text("Hel"))
    with pytest.raises(Exception, match="before the answer was complete"):
        stream.finish(1)


def tool_call(fragment: dict[str, Any]) -> StreamChunk:
    return StreamChunk({"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})


def test_a_retried_tool_call_resumes_inside_its_arguments():
    sink = Sink()
    stream = relay(sink)
    opening = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    stream.new_attempt()
    stream.feed(tool_call({**opening, "function": {"name": "f", "arguments": ""}}))
    stream.feed(tool_call({"index": 0, "function": {"arguments": '{"ci'}}))
    stream.new_attempt()
    stream.feed(tool_call({**opening, "function": {"name": "f", "arguments": '{"city'}}))
    stream.feed(tool_call({"index": 0, "function": {"arguments": '": "Paris"}'}}))
    stream.feed(
        StreamChunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    )
    call = sink.consumers_have().completion().choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "f",
        '{"city": "Paris"}',
    )


def test_redelivered_job_resumes_after_chunks_a_dead_worker_published():
    published = StreamedAnswer()
    published.add(text("Hello").data)
    sink = Sink()
    stream = relay(sink, published)
    stream.new_attempt()
    stream.feed(text("Hello there"))
    assert [c["choices"][0]["delta"] for c in sink.chunks] == [{"content": " there"}]
    assert sink.firsts == [False]


def test_each_choice_of_a_multi_choice_stream_resumes_on_its_own():
    sink = Sink()
    stream = relay(sink)
    stream.new_attempt()
    stream.feed(text("A1", 0))
    stream.feed(text("B1", 1))
    stream.feed(text("A2", 0))
    stream.new_attempt()
    for chunk in [text("A1", 0), text("B1", 1), text("A2", 0), text("B2", 1), text("A3", 0)]:
        stream.feed(chunk)
    have = sink.consumers_have()
    assert (content(have, 0), content(have, 1)) == ("A1A2A3", "B1B2")


def test_a_different_answer_on_retry_fails_instead_of_garbling():
    stream = relay(Sink())
    stream.new_attempt()
    stream.feed(text("Hello"))
    stream.new_attempt()
    with pytest.raises(StreamDiverged):
        stream.feed(text("Goodbye"))


@given(
    pieces=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=12),
    cut=st.integers(min_value=0, max_value=12),
    regrouped=st.integers(min_value=1, max_value=5),
)
def test_however_an_attempt_breaks_the_retry_completes_the_answer_exactly(pieces, cut, regrouped):
    whole = "".join(pieces)
    sink = Sink()
    stream = relay(sink)
    stream.new_attempt()
    for piece in pieces[:cut]:
        stream.feed(text(piece))
    stream.new_attempt()  # the retry cuts the same text in other places
    for i in range(0, len(whole), regrouped):
        stream.feed(text(whole[i : i + regrouped]))
    stream.feed(finish())
    assert content(sink.consumers_have()) == whole
    assert stream.finish(1).choices[0].message.content == whole
