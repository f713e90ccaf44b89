"""Chunks adding up to a completion: text, tool calls from fragments, logprobs, usage."""

from __future__ import annotations

from chatq.shared.completion import Completion, chunks_of
from chatq.workers.streamed_answer import Relation, StreamedAnswer
from hypothesis import given
from hypothesis import strategies as st


def add_all(chunks) -> StreamedAnswer:
    answer = StreamedAnswer()
    for chunk in chunks:
        answer.add(chunk)
    return answer


def test_tool_calls_are_assembled_from_their_fragments():
    head = {"id": "chatcmpl-1", "created": 3, "model": "m", "system_fingerprint": "fp_1"}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        *[
            {
                **head,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [fragment]},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
            for fragment in [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                },
                {"index": 0, "function": {"arguments": '{"x":'}},
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "g", "arguments": "{}"},
                },
                {"index": 0, "function": {"arguments": " 1}"}},
            ]
        ],
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {
            **head,
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
    ]
    completion = add_all(chunks).completion()
    message = completion.choices[0].message
    assert message.content is None and completion.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_a", "f", '{"x": 1}'),
        ("call_b", "g", "{}"),
    ]
    assert (completion.id, completion.system_fingerprint) == ("chatcmpl-1", "fp_1")
    assert completion.usage.total_tokens == 3


def test_reasoning_refusal_logprobs_and_unknown_fields_are_kept():
    token = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Think"}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "ing."}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "Hi", "audio_future": {"x": 1}},
                    "logprobs": {"content": [token], "refusal": None},
                }
            ],
            "service_tier": "default",
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": 7}]},
    ]
    completion = add_all(chunks).completion()
    choice = completion.choices[0]
    assert choice.message.reasoning_content == "Thinking."
    assert choice.message.content == "Hi"
    assert choice.logprobs == {"content": [token], "refusal": None}
    wire = completion.wire()
    assert wire["service_tier"] == "default"
    assert wire["choices"][0]["stop_reason"] == 7
    assert wire["choices"][0]["message"]["audio_future"] == {"x": 1}


@given(
    content=st.text(max_size=20) | st.none(),
    reasoning=st.text(min_size=1, max_size=20) | st.none(),
    arguments=st.lists(st.text(max_size=10), max_size=3),
    finish=st.sampled_from(["stop", "length", "tool_calls"]),
)
def test_an_answer_replayed_as_chunks_adds_up_to_itself(content, reasoning, arguments, finish):
    message = {"role": "assistant", "content": content, "refusal": None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if arguments:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": f"f{i}", "arguments": a}}
            for i, a in enumerate(arguments)
        ]
    original = Completion.model_validate(
        {"choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}
    )
    again = add_all(chunks_of(original)).completion()
    assert again.choices[0].message.wire() == original.choices[0].message.wire()
    assert again.choices[0].finish_reason == finish


def test_relation_of_two_states_of_one_choice():
    short = add_all([{"choices": [{"index": 0, "delta": {"content": "Hel"}}]}])
    long = add_all([{"choices": [{"index": 0, "delta": {"content": "Hello"}}]}])
    other = add_all([{"choices": [{"index": 0, "delta": {"content": "Bye"}}]}])
    assert short.relation(long, 0) is Relation.BEHIND
    assert long.relation(short, 0) is Relation.AHEAD
    assert other.relation(long, 0) is Relation.DIVERGED
    assert long.beyond(short, 0)["delta"] == {"content": "lo"}
