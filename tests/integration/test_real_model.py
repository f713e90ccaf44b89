"""chatq in front of a real model server: llama.cpp's server on SmolLM2-135M (the `local`
extra, as `chatq up --provider local` runs it). At temperature 0 the answer through chatq is
the answer the server gives directly; a cancel frees the server's slot (its ``/slots``)."""

from __future__ import annotations

import json
import time

import openai
import pytest
import requests
from chatq.shared.jobs import JobStatus
from chatq.workers.provider_call import choice_seed
from prometheus_client.parser import text_string_to_metric_families

from chatq.local_model import MODEL_NAME, install_model
from tests.support.batches import batch_ended, cancel_batch, start_batch
from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually


@pytest.fixture(scope="module", autouse=True)
def model_installed() -> None:
    install_model()


# As `chatq up --provider local` runs it, but taking one choice per call ('n' by calls).
stack = stack_fixture(gateway=True, local_model=True, extra_env={"CHATQ_PROVIDER_MAX_N": "1"})

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def weather_call(call_id: str, city: str) -> dict:
    arguments = json.dumps({"city": city})
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    return {"role": "assistant", "tool_calls": [call]}


def direct(stack) -> openai.OpenAI:
    """The official client on the model server itself."""
    return openai.OpenAI(base_url=stack.sim_url, api_key="unused", max_retries=0)


def busy_slots(stack) -> int:
    slots = requests.get(stack.sim_url.removesuffix("/v1") + "/slots", timeout=5).json()
    return sum(1 for slot in slots if slot["is_processing"])


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def chat(**extra) -> dict:
    return {"model": MODEL_NAME, "temperature": 0, "max_tokens": 40, **extra}


def test_a_plain_answer_is_the_servers_own(stack):
    asked = chat(messages=[{"role": "user", "content": "Name three colours."}])
    expected = direct(stack).chat.completions.create(**asked)
    answer = stack.openai().chat.completions.create(**asked)
    assert answer.choices[0].message.content == expected.choices[0].message.content
    assert answer.choices[0].finish_reason == expected.choices[0].finish_reason
    assert answer.usage.prompt_tokens == expected.usage.prompt_tokens
    assert answer.usage.completion_tokens == expected.usage.completion_tokens


def test_a_streamed_answer_is_the_servers_own(stack):
    asked = chat(
        messages=[{"role": "user", "content": "Describe the sea."}],
        stream=True,
        stream_options={"include_usage": True},
    )

    def collected(client: openai.OpenAI) -> tuple[str, object]:
        text, usage = [], None
        for chunk in client.chat.completions.create(**asked):
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
            usage = chunk.usage or usage
        return "".join(text), usage

    expected_text, expected_usage = collected(direct(stack))
    text, usage = collected(stack.openai())
    assert text == expected_text and text
    assert usage.completion_tokens == expected_usage.completion_tokens


def test_a_tool_call_is_the_servers_own(stack):
    asked = chat(
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            weather_call("c1", "Paris"),
            {"role": "user", "content": "Weather in Berlin?"},
        ],
        tools=[WEATHER_TOOL],
    )
    expected = direct(stack).chat.completions.create(**asked).choices[0]
    answer = stack.openai().chat.completions.create(**asked).choices[0]
    assert expected.finish_reason == "tool_calls"
    assert answer.finish_reason == "tool_calls"
    called = answer.message.tool_calls[0].function
    assert (called.name, called.arguments) == (
        expected.message.tool_calls[0].function.name,
        expected.message.tool_calls[0].function.arguments,
    )
    assert answer.message.content == expected.message.content


def test_a_streamed_tool_call_is_the_servers_own(stack):
    asked = chat(
        messages=[user("Weather in Paris?"), weather_call("c1", "Paris"), user("Weather in Rome?")],
        tools=[WEATHER_TOOL],
        stream=True,
    )

    def called(client: openai.OpenAI) -> tuple[str, str, str | None]:
        name, arguments, finish = "", "", None
        for chunk in client.chat.completions.create(**asked):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or ():
                    name += call.function.name or ""
                    arguments += call.function.arguments or ""
                finish = choice.finish_reason or finish
        return name, arguments, finish

    expected = called(direct(stack))
    assert expected[0] == "get_weather" and expected[2] == "tool_calls"
    assert called(stack.openai()) == expected


def test_logprobs_are_the_servers_own(stack):
    asked = chat(
        messages=[{"role": "user", "content": "Say yes."}],
        logprobs=True,
        top_logprobs=2,
        max_tokens=5,
    )
    expected = direct(stack).chat.completions.create(**asked).choices[0].logprobs.content
    answer = stack.openai().chat.completions.create(**asked).choices[0].logprobs.content
    assert [t.token for t in answer] == [t.token for t in expected]
    assert [len(t.top_logprobs) for t in answer] == [2] * len(expected)


def test_a_prompt_past_the_context_is_the_servers_400(stack):
    asked = chat(messages=[{"role": "user", "content": "word " * 9000}])
    with pytest.raises(openai.BadRequestError) as direct_error:
        direct(stack).chat.completions.create(**asked)
    with pytest.raises(openai.BadRequestError) as error:
        stack.openai().chat.completions.create(**asked)
    assert error.value.status_code == direct_error.value.status_code == 400
    assert "context" in str(error.value.message).lower()


def test_an_async_job_gets_the_servers_answer(stack):
    asked = chat(messages=[{"role": "user", "content": "What is a cat?"}])
    expected = direct(stack).chat.completions.create(**asked).choices[0].message.content
    job = requests.post(f"{stack.gateway_url}/jobs", json=asked, timeout=10).json()
    with stack.client() as client:
        result = client.result(job["id"], timeout=60)
    assert result.status is JobStatus.done
    assert result.completion.choices[0].message.content == expected


def test_cancelling_a_streaming_job_frees_the_servers_slot_within_a_second(stack):
    redis = stack.settings_redis()
    with stack.client() as client:
        job_id = client.submit(
            "Write a very long story.",
            stream=True,
            max_tokens=1500,
            cache=False,
            ignore_eos=True,  # llama.cpp's own field: all 1500 tokens, unless stopped
        )
        eventually(lambda: redis.xlen(f"chatq:events:{job_id}") >= 5 or None, every=0.02)
        assert busy_slots(stack) == 1
        cancelled_at = time.monotonic()
        reply = requests.delete(f"{stack.gateway_url}/jobs/{job_id}", timeout=10)
        assert reply.json()["status"] == "cancelled"
        eventually(lambda: busy_slots(stack) == 0 or None, timeout=5, every=0.02)
        freed_in = time.monotonic() - cancelled_at
        record = client.status(job_id)
    assert freed_in < 1.0, f"the server generated {freed_in:.2f} s after the cancel"
    assert record.status is JobStatus.cancelled
    assert 0 < record.result.usage.completion_tokens < 1500
    print(f"the server's slot was free {freed_in * 1000:.0f} ms after the cancel")


def test_a_deadline_passing_mid_call_frees_the_servers_slot(stack):
    with stack.client() as client:
        job_id = client.submit(
            "Write a very long story.",
            stream=True,
            max_tokens=1500,
            cache=False,
            deadline_s=1.5,
            ignore_eos=True,
        )
        result = client.result(job_id, timeout=30)
        eventually(lambda: busy_slots(stack) == 0 or None, timeout=5, every=0.02)
        freed_at = time.time()
    assert result.status is JobStatus.cancelled
    assert result.error.code == "deadline_exceeded"
    assert 0 < result.usage.completion_tokens < 1500
    assert freed_at - (result.timings.created_at + 1.5) < 1.0


def test_cancelling_a_batch_frees_the_slots_of_its_lines_in_flight(stack):
    lines = [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": chat(
                messages=[{"role": "user", "content": f"Write long story number {i}."}],
                max_tokens=1500,
                stream=True,
                ignore_eos=True,
            ),
        }
        for i in range(3)
    ]
    batch = start_batch(stack.gateway_url, lines)
    eventually(lambda: busy_slots(stack) == 3 or None, timeout=30, every=0.05)
    cancelled_at = time.monotonic()
    cancel_batch(stack.gateway_url, batch["id"])
    eventually(lambda: busy_slots(stack) == 0 or None, timeout=10, every=0.02)
    freed_in = time.monotonic() - cancelled_at
    assert freed_in < 1.0, f"the server generated {freed_in:.2f} s after the cancel"

    final = batch_ended(stack.gateway_url, batch["id"])
    assert final["status"] == "cancelled" and final["request_counts"]["completed"] == 0


def test_n_by_calls_samples_each_choice_with_a_seed_of_its_own(stack):
    asked = chat(
        messages=[{"role": "user", "content": "Invent a name for a cat."}],
        temperature=1.0,
        max_tokens=16,
        n=2,
        seed=7,
        extra_body={"cache": False},
    )
    first = stack.openai().chat.completions.create(**asked)
    again = stack.openai().chat.completions.create(**asked)
    texts = [c.message.content for c in first.choices]
    assert texts[0] != texts[1]
    assert [c.message.content for c in again.choices] == texts
    streamed, stream_usage = ["", ""], None
    options = {"stream": True, "stream_options": {"include_usage": True}}
    for chunk in stack.openai().chat.completions.create(**asked, **options):
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
        stream_usage = chunk.usage or stream_usage
    assert streamed == texts
    assert stream_usage.completion_tokens == first.usage.completion_tokens
    one_by_one = [
        direct(stack).chat.completions.create(
            **{**asked, "n": 1, "seed": choice_seed(7, index), "extra_body": {}}
        )
        for index in range(2)
    ]
    assert [c.choices[0].message.content for c in one_by_one] == texts
    assert first.usage.completion_tokens == sum(c.usage.completion_tokens for c in one_by_one)
    assert first.usage.prompt_tokens == sum(c.usage.prompt_tokens for c in one_by_one)


# As `chatq up --provider local` runs it ('n' up to the server's four slots in one call), but
# one call at a time: the server decodes each alone, as the direct calls compared with them.
# Decoded beside others on its one KV cache, a long greedy answer may part from its own.
one_call_at_a_time = stack_fixture(
    gateway=True, local_model=True, extra_env={"CHATQ_PROVIDER_MAX_CONCURRENCY": "1"}
)


def test_a_batch_gets_the_servers_answers(one_call_at_a_time):
    stack = one_call_at_a_time
    questions = ["What is rain?", "Name a fruit.", "Say hi."]
    expected = {
        f"q{i}": direct(stack).chat.completions.create(**chat(messages=[user(q)]))
        for i, q in enumerate(questions)
    }
    lines = [
        {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions"}
        | {"body": chat(messages=[user(q)])}
        for i, q in enumerate(questions)
    ]
    client = stack.openai()
    uploaded = client.files.create(
        file=("in.jsonl", "\n".join(json.dumps(line) for line in lines).encode()),
        purpose="batch",
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    def ended() -> object | None:
        now = client.batches.retrieve(batch.id)
        return now if now.status in ("completed", "failed", "cancelled", "expired") else None

    done = eventually(ended, timeout=60, every=0.3)
    assert done.status == "completed"
    output = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    answers = {r["custom_id"]: r["response"]["body"]["choices"][0]["message"] for r in output}
    assert answers == {
        key: {"role": "assistant", "content": answer.choices[0].message.content}
        for key, answer in expected.items()
    }


def test_n_in_one_call_streams_the_servers_interleaved_choices_each_under_its_index(
    one_call_at_a_time,
):
    asked = chat(
        messages=[user("Invent a name for a dog.")],
        temperature=1.0,
        max_tokens=16,
        n=2,
        seed=3,
    )
    streaming = {"stream": True, "stream_options": {"include_usage": True}}

    def streamed(client: openai.OpenAI, **extra) -> tuple[list[str], object]:
        texts, usage = ["", ""], None
        for chunk in client.chat.completions.create(**asked, **streaming, **extra):
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
            usage = chunk.usage or usage
        return texts, usage

    expected, _ = streamed(direct(one_call_at_a_time))
    texts, usage = streamed(one_call_at_a_time.openai(), extra_body={"cache": False})
    plain = direct(one_call_at_a_time).chat.completions.create(**asked)
    assert texts == expected == [c.message.content for c in plain.choices]
    # llama.cpp sends one usage chunk per choice; chatq's stream ends with one, the server's
    # own count for the request (which, like its non-streamed answer's, counts one choice).
    assert usage.completion_tokens == plain.usage.completion_tokens


def test_a_response_through_chatq_is_the_servers_chat_answer(stack):
    asked = chat(
        messages=[{"role": "system", "content": "Be brief."}, user("What is snow?")],
        max_tokens=200,
    )
    expected = direct(stack).chat.completions.create(**asked).choices[0].message.content
    response = stack.openai().responses.create(
        model=MODEL_NAME,
        instructions="Be brief.",
        input="What is snow?",
        temperature=0,
        max_output_tokens=200,
    )
    assert response.status == "completed" and response.output_text == expected
    with stack.openai().responses.stream(
        model=MODEL_NAME,
        instructions="Be brief.",
        input="What is snow?",
        temperature=0,
        max_output_tokens=200,
        extra_body={"cache": False},
    ) as events:
        streamed = events.get_final_response()
    assert streamed.output_text == expected


def test_embeddings_through_chatq_are_the_servers_own(stack):
    texts = ["A cat sleeps.", "Stocks fell today.", "A cat sleeps."]
    expected = direct(stack).embeddings.create(model=MODEL_NAME, input=texts)
    answer = stack.openai().embeddings.create(model=MODEL_NAME, input=texts)
    assert len(answer.data) == 3
    for mine, theirs in zip(answer.data, expected.data, strict=True):
        pairs = zip(mine.embedding, theirs.embedding, strict=True)
        assert all(abs(a - b) < 1e-5 for a, b in pairs)
    assert answer.usage.prompt_tokens == expected.usage.prompt_tokens


def test_an_embeddings_batch_is_gathered_into_list_calls_with_the_servers_vectors(stack):
    texts = [f"Note {i}: the {('red', 'green', 'blue')[i % 3]} door is open." for i in range(24)]
    expected = direct(stack).embeddings.create(model=MODEL_NAME, input=texts)
    lines = [
        {
            "custom_id": f"n{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": MODEL_NAME, "input": text, "encoding_format": "float"},
        }
        for i, text in enumerate(texts)
    ]
    gathered = lookups(stack, "gathered")
    batch = start_batch(stack.gateway_url, lines, "/v1/embeddings")
    done = batch_ended(stack.gateway_url, batch["id"], timeout=120)
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 24
    assert lookups(stack, "gathered") > gathered  # some lines shared a call with others
    output = stack.openai().files.content(done["output_file_id"]).text.splitlines()
    bodies = {r["custom_id"]: r["response"]["body"] for r in map(json.loads, output)}
    for i, theirs in enumerate(expected.data):
        mine = bodies[f"n{i}"]["data"][0]["embedding"]
        assert all(abs(a - b) < 1e-4 for a, b in zip(mine, theirs.embedding, strict=True))


def lookups(stack, how: str) -> float:
    """Jobs answered so far in the way ``how`` names, from the gateway's /metrics."""
    text = requests.get(stack.gateway_url.removesuffix("/v1") + "/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "chatq_cache_lookups_total" and s.labels.get("result") == how
    )
