"""OpenAI wire-format bodies built from results."""

from __future__ import annotations

import json

from producers.openai_format import DONE_LINE, chunk, completion, model_list, sse
from shared.jobs import ChatResult, JobStatus, Usage


def test_completion_body():
    result = ChatResult(
        job_id="job_abc",
        status=JobStatus.done,
        model="sim-mini",
        content="Hi!",
        finish_reason="length",
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
    )
    body = completion(result, created=1)
    assert body["id"] == "chatcmpl-abc"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hi!", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["total_tokens"] == 5


def test_chunks_and_sse_lines():
    line = sse(chunk("job_1", "m", 1, delta={"content": "x"}))
    assert line.startswith("data: ") and line.endswith("\n\n")
    body = json.loads(line[6:])
    assert body["object"] == "chat.completion.chunk"
    assert body["choices"][0]["delta"] == {"content": "x"}
    usage_only = chunk("job_1", "m", 1, usage={"total_tokens": 1}, with_choice=False)
    assert usage_only["choices"] == [] and usage_only["usage"] == {"total_tokens": 1}
    assert DONE_LINE == "data: [DONE]\n\n"


def test_model_list():
    assert [m["id"] for m in model_list(["a", "b"], created=0)["data"]] == ["a", "b"]
