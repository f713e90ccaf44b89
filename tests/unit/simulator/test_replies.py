"""Simulator replies: deterministic, one token per piece, honouring max_tokens, exact usage."""

from __future__ import annotations

import json

from chatq.shared.tokens import count_prompt_tokens, count_text_tokens
from chatq.simulator.replies import prompt_tokens, replies_for, reply_for
from hypothesis import given
from hypothesis import strategies as st


def body(text: str = "hi", **extra):
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


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


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_a_reasoning_model_thinks_first_and_counts_it():
    reply = reply_for({**body(), "model": "sim-reasoner"}, echo=False, max_reply_tokens=64)
    plain = reply_for({**body(), "model": "sim-mini"}, echo=False, max_reply_tokens=64)
    assert reply.reasoning and not plain.reasoning
    assert "".join(reply.reasoning).endswith(".")
    assert reply.completion_tokens == len(reply.reasoning) + len(reply.pieces)
    usage = reply.usage()
    assert usage["completion_tokens_details"]["reasoning_tokens"] == len(reply.reasoning)
    assert usage["completion_tokens"] == reply.completion_tokens


def test_max_tokens_bounds_reasoning_and_content_together():
    request = {**body(), "model": "deepseek-reasoner"}
    full = reply_for(request, echo=False, max_reply_tokens=64)
    cut = reply_for(
        {**request, "max_tokens": len(full.reasoning) + 2}, echo=False, max_reply_tokens=64
    )
    assert cut.reasoning == full.reasoning and cut.pieces == full.pieces[:2]
    assert cut.finish_reason == "length"
    short = reply_for({**request, "max_tokens": 3}, echo=False, max_reply_tokens=64)
    assert (short.reasoning, short.pieces) == (full.reasoning[:3], ())


def test_sim_refuse_in_the_last_user_message_refuses():
    reply = reply_for(body("please sim:refuse this"), echo=True, max_reply_tokens=64)
    assert reply.refused and reply.content == "I'm sorry, I can't help with that."
    assert reply.finish_reason == "stop" and reply.completion_tokens == len(reply.pieces)
    tools = reply_for(
        body("sim:refuse get_weather", tools=[WEATHER_TOOL]), echo=False, max_reply_tokens=64
    )
    assert tools.refused and not tools.tool_calls  # a refusal wins over tools
    assert not reply_for(body("sim: refuse"), echo=False, max_reply_tokens=64).refused


def test_stop_cuts_the_content_before_the_first_stop_string():
    natural = reply_for(body("one"), echo=False, max_reply_tokens=64)
    word = natural.pieces[3]
    cut = reply_for(body("one", stop=word), echo=False, max_reply_tokens=64)
    assert natural.content.startswith(cut.content)
    assert word not in cut.content and cut.finish_reason == "stop"
    assert cut.content == natural.content[: natural.content.index(word)]
    several = reply_for(body("one", stop=["zzz", word]), echo=False, max_reply_tokens=64)
    assert several == cut
    unmet = reply_for(body("one", stop=["zzz"]), echo=False, max_reply_tokens=64)
    assert unmet == natural


def test_stop_inside_a_word_keeps_the_part_before_it():
    reply = reply_for(body("extraordinary day", stop="dinary"), echo=True, max_reply_tokens=64)
    assert (reply.content, reply.pieces) == ("extraor", ("extr", "aor"))
    spaced = reply_for(body("say it back", stop="it"), echo=True, max_reply_tokens=64)
    assert spaced.content == "say "


def test_json_object_wraps_the_answer_and_json_schema_follows_the_schema():
    wrapped = reply_for(
        body("answer in json", response_format={"type": "json_object"}),
        echo=True,
        max_reply_tokens=64,
    )
    assert json.loads(wrapped.content) == {"answer": "answer in json"}
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "trip", "schema": schema, "strict": True}}
    shaped = reply_for(body("Lyon", response_format=fmt), echo=False, max_reply_tokens=64)
    value = json.loads(shaped.content)
    assert value["city"] == "Lyon" and type(value["days"]) is int
    assert shaped.completion_tokens == count_text_tokens(shaped.content)


def test_tool_calls_count_their_arguments_and_are_cut_to_max_tokens():
    request = body("get_weather in Oslo", tools=[WEATHER_TOOL])
    reply = reply_for(request, echo=False, max_reply_tokens=64)
    [call] = reply.tool_calls
    assert reply.pieces == () and reply.finish_reason == "tool_calls"
    assert json.loads(call.arguments) == {"city": "get_weather in Oslo"}
    assert reply.completion_tokens == count_text_tokens(call.arguments)
    cut = reply_for({**request, "max_tokens": 3}, echo=False, max_reply_tokens=64)
    assert cut.finish_reason == "length" and cut.tool_calls[0].fragments == call.fragments[:3]


def test_n_choices_call_tools_with_ids_of_their_own():
    request = body("get_weather in Oslo", tools=[WEATHER_TOOL], n=2)
    replies = replies_for(request, echo=False, max_reply_tokens=64)
    assert len({r.tool_calls[0].id for r in replies}) == 2


def test_prompt_tokens_count_tool_messages_and_the_calls_in_the_history():
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
    ]
    assert prompt_tokens(messages) == count_prompt_tokens(
        ["weather?", 'get_weather {"city": "Oslo"}', "sunny, 21 C"]
    )
