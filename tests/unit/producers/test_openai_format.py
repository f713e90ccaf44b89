"""OpenAI wire-format bodies served from results: the provider's objects, chatq's id."""

from __future__ import annotations

import json

from chatq.producers.openai_format import DONE_LINE, ChunkServer, completion, model_list, sse
from chatq.shared.completion import Completion
from chatq.shared.jobs import ChatResult, JobStatus

PROVIDERS = {
    "id": "chatcmpl-upstream",
    "object": "chat.completion",
    "created": 5,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
    },
    "system_fingerprint": "fp_1",
    "service_tier": "default",
}


def test_a_completion_is_the_providers_with_chatqs_id_created_and_model():
    result = ChatResult(
        job_id="job_abc",
        status=JobStatus.done,
        model="chat-small",
        completion=Completion.model_validate(PROVIDERS),
    )
    body = completion(result, created=1)
    assert (body["id"], body["created"], body["model"]) == ("chatcmpl-abc", 1, "chat-small")
    rest = {k: v for k, v in body.items() if k not in ("id", "created", "model")}
    assert rest == {k: v for k, v in PROVIDERS.items() if k not in ("id", "created", "model")}


def test_a_result_survives_its_json_round_trip_whole():
    result = ChatResult(
        job_id="job_abc", status=JobStatus.done, completion=Completion.model_validate(PROVIDERS)
    )
    again = ChatResult.model_validate_json(result.to_json())
    assert again.completion is not None and again.completion.wire() == PROVIDERS


def test_chunks_get_chatqs_head_and_lose_usage_unless_asked():
    chunk = {"id": "x", "created": 9, "model": "up", "choices": [], "usage": None, "z": 1}
    served = ChunkServer("job_1", "m", 1, include_usage=False).serve(chunk)
    assert served == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "z": 1,
    }
    assert "usage" in ChunkServer("job_1", "m", 1, include_usage=True).serve(chunk)


def test_an_answer_not_streamed_replays_as_chunks_then_its_usage():
    server = ChunkServer("job_1", "m", 1, include_usage=True)
    answer = Completion.model_validate(PROVIDERS)
    chunks = list(server.replay(answer))
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in chunks]
    assert [c for c in calls if c] == [
        [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": "{}"},
            }
        ]
    ]
    usage = server.usage(answer)
    assert usage is not None and usage["choices"] == []
    assert usage["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["system_fingerprint"] == "fp_1"


def test_sse_lines():
    line = sse({"a": 1})
    assert line.startswith("data: ") and line.endswith("\n\n")
    assert json.loads(line[6:]) == {"a": 1}
    assert DONE_LINE == "data: [DONE]\n\n"


def test_model_list():
    assert [m["id"] for m in model_list(["a", "b"], created=0)["data"]] == ["a", "b"]
