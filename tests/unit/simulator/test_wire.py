"""Response bodies and stream events in OpenAI's shapes."""

from __future__ import annotations

import json
import re

from chatq.simulator.replies import replies_for, reply_for
from chatq.simulator.wire import completion, fingerprint, stream, total_usage

BODY = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}]}
IDS = {"completion_id": "chatcmpl-1", "created": 7, "model": "sim-mini"}


def reply():
    return reply_for(BODY, echo=False, max_reply_tokens=64)


def test_fingerprint_is_fp_and_ten_hex_digits_fixed_per_model():
    assert re.fullmatch(r"fp_[0-9a-f]{10}", fingerprint("sim-mini"))
    assert fingerprint("sim-mini") == fingerprint("sim-mini") != fingerprint("sim-large")


def test_completion_and_every_chunk_carry_fingerprint_and_service_tier():
    body = completion([reply()], **IDS)
    assert (body["system_fingerprint"], body["service_tier"]) == (
        fingerprint("sim-mini"),
        "default",
    )
    events = stream([reply()], include_usage=True, **IDS).events
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["system_fingerprint"] == fingerprint("sim-mini") for c in chunks)
    assert all(c["service_tier"] == "default" for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def replies(**extra):
    return replies_for({**BODY, **extra}, echo=False, max_reply_tokens=64)


def chunks(planned):
    assert planned.events[-1] == b"data: [DONE]\n\n"
    return [json.loads(e[6:]) for e in planned.events[:-1]]


def test_tool_calls_stream_as_openai_does():
    [reply] = replies(messages=[{"role": "user", "content": "get_weather, Oslo"}], tools=[WEATHER])
    [call] = reply.tool_calls
    sent = chunks(stream([reply], include_usage=False, **IDS))
    choices = [c["choices"][0] for c in sent]
    assert choices[0]["delta"] == {"role": "assistant", "content": None}
    assert choices[1]["delta"] == {
        "tool_calls": [
            {
                "index": 0,
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    fragments = [c["delta"]["tool_calls"][0] for c in choices[2:-1]]
    assert len(fragments) > 1 and all(set(f) == {"index", "function"} for f in fragments)
    assert "".join(f["function"]["arguments"] for f in fragments) == call.arguments
    assert choices[-1] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    message = completion([reply], **IDS)["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": call.arguments},
            }
        ],
    }


def test_n_choices_stream_round_robin_each_with_its_finish_then_one_usage():
    answers = replies(n=3)
    planned = stream(answers, include_usage=True, **IDS)
    sent = chunks(planned)
    assert all(len(c["choices"]) == 1 for c in sent[:-1])
    assert [c["choices"][0]["index"] for c in sent[:3]] == [0, 1, 2]
    assert [c["choices"][0]["index"] for c in sent[3:6]] == [0, 1, 2]
    for i, answer in enumerate(answers):
        mine = [c["choices"][0] for c in sent[:-1] if c["choices"][0]["index"] == i]
        assert "".join(c["delta"].get("content") or "" for c in mine) == answer.content
        assert [c["finish_reason"] for c in mine][-1] == "stop"
    assert sent[-1]["choices"] == [] and sent[-1]["usage"] == total_usage(answers)
    assert total_usage(answers)["completion_tokens"] == sum(a.completion_tokens for a in answers)
    pieces = sum(len(a.pieces) for a in answers)
    assert planned.cut_at == 3 + pieces // 2
    rounds = max(len(a.pieces) for a in answers)
    assert len(planned.gaps) == rounds - 1 and min(planned.gaps) == 6


def test_reasoning_streams_before_the_content():
    thoughts = len(replies(model="sim-reasoner")[0].reasoning)
    [reply] = replies(model="sim-reasoner", max_tokens=thoughts + 3)
    sent = [c["choices"][0]["delta"] for c in chunks(stream([reply], include_usage=False, **IDS))]
    assert sent[0] == {"role": "assistant", "content": None, "reasoning_content": ""}
    thinking = sent[1 : 1 + len(reply.reasoning)]
    assert all(d["content"] is None for d in thinking)
    assert "".join(d["reasoning_content"] for d in thinking) == "".join(reply.reasoning)
    assert [d["content"] for d in sent[1 + len(reply.reasoning) : -1]] == list(reply.pieces)
    message = completion([reply], **IDS)["choices"][0]["message"]
    assert message["reasoning_content"] == "".join(reply.reasoning)
    assert message["content"] == reply.content


def test_a_refusal_streams_as_refusal_deltas():
    [reply] = replies(messages=[{"role": "user", "content": "sim:refuse"}])
    sent = [c["choices"][0]["delta"] for c in chunks(stream([reply], include_usage=False, **IDS))]
    assert sent[0] == {"role": "assistant", "content": None, "refusal": ""}
    assert "".join(d["refusal"] for d in sent[1:-1]) == "I'm sorry, I can't help with that."
    message = completion([reply], **IDS)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "refusal": reply.content}


def test_logprobs_plain_and_streamed_agree():
    answers = replies(n=2)
    plain = completion(answers, top_logprobs=2, **IDS)["choices"]
    sent = chunks(stream(answers, include_usage=False, top_logprobs=2, **IDS))
    for i, answer in enumerate(answers):
        logprobs = plain[i]["logprobs"]
        assert logprobs["refusal"] is None
        assert [e["token"] for e in logprobs["content"]] == list(answer.pieces)
        assert all(len(e["top_logprobs"]) == 2 for e in logprobs["content"])
        streamed = [
            entry
            for c in sent
            if c["choices"][0]["index"] == i and c["choices"][0]["logprobs"]
            for entry in c["choices"][0]["logprobs"]["content"]
        ]
        assert streamed == logprobs["content"]
    assert completion(answers, **IDS)["choices"][0]["logprobs"] is None
