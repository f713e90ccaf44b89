"""OpenAI's Responses API on the gateway, driven by the official client: plain, streamed
(parsed by the client's own helpers), tools, JSON output, background mode, conversations."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import requests

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

# One call at a time to the provider, so that a background response can be seen queued.
stack = stack_fixture(
    gateway=True,
    sim_args=["--ttft-ms", "50", "--tokens-per-s", "200"],
    extra_env={
        "CHATQ_PROVIDER_MAX_CONCURRENCY": "1",
        "CHATQ_MODELS": "sim-mini,sim-reasoner",
        "CHATQ_WEBHOOK_SECRET": "whsec-test",
        "CHATQ_WEBHOOK_ALLOW_HTTP": "true",  # the test's receiver, on loopback
        "CHATQ_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    },
)


@pytest.fixture(scope="module")
def client(stack) -> openai.OpenAI:
    return stack.openai()


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def test_a_plain_response_has_its_text_and_usage(client):
    response = client.responses.create(
        model="sim-mini", input="Say hello.", instructions="Be brief.", max_output_tokens=20
    )
    assert response.status in ("completed", "incomplete")
    assert response.output_text
    assert response.output[0].type == "message"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.id.startswith("resp_")
    assert client.responses.retrieve(response.id).output_text == response.output_text


def test_a_streamed_response_is_the_event_sequence_the_client_parses(client):
    with client.responses.stream(model="sim-mini", input="Tell a story.") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds
    assert kinds[-1] == "response.completed"
    assert final.output_text and final.status == "completed"


@pytest.mark.parametrize("stream", [False, True])
def test_a_reasoning_models_thoughts_are_a_reasoning_item_before_the_message(client, stream):
    asked = {"model": "sim-reasoner", "input": "Why is the sky blue?", "max_output_tokens": 400}
    if stream:
        with client.responses.stream(**asked) as events:
            kinds = [event.type for event in events]
            response = events.get_final_response()
        assert kinds.index("response.reasoning_text.delta") < kinds.index(
            "response.output_text.delta"
        )
    else:
        response = client.responses.create(**asked)
    thinking, message = response.output
    assert thinking.type == "reasoning" and thinking.content[0].text
    assert message.type == "message" and response.output_text
    follow_up = [*response.output, {"role": "user", "content": "And at sunset?"}]
    assert client.responses.create(model="sim-reasoner", input=follow_up).output_text


@pytest.mark.parametrize("stream", [False, True])
def test_a_refusal_is_the_messages_refusal_part(client, stream):
    asked = {"model": "sim-mini", "input": "sim:refuse this"}
    if stream:
        with client.responses.stream(**asked) as events:
            kinds = [event.type for event in events]
            response = events.get_final_response()
        assert "response.refusal.delta" in kinds and "response.refusal.done" in kinds
    else:
        response = client.responses.create(**asked)
    part = response.output[0].content[0]
    assert part.type == "refusal" and part.refusal
    again = client.responses.create(
        model="sim-mini", input=[*response.output, *[{"role": "user", "content": "Why not?"}]]
    )
    assert again.status == "completed"


def test_a_function_tool_round_trip(client):
    first = client.responses.create(
        model="sim-mini", input="Weather in Paris?", tools=[WEATHER], tool_choice="required"
    )
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather"
    json.loads(call.arguments)
    second = client.responses.create(
        model="sim-mini",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21C"},
        ],
    )
    assert second.status == "completed" and second.output_text


def test_text_format_json_schema_gives_json(client):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model="sim-mini",
        input="A name, as JSON.",
        text={"format": {"type": "json_schema", "name": "person", "schema": schema}},
    )
    assert isinstance(json.loads(response.output_text), dict)


def test_background_mode_is_polled_to_completion(client):
    queued = client.responses.create(model="sim-mini", input="Slow, please.", background=True)
    assert queued.status == "queued" and queued.background

    def finished():
        now = client.responses.retrieve(queued.id)
        return now if now.status not in ("queued", "in_progress") else None

    done = eventually(finished, timeout=30)
    assert done.status == "completed" and done.output_text


def test_a_background_responses_webhook_is_called_when_it_ends(client):
    calls: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_port}/hook"
        response = client.responses.create(
            model="sim-mini", input="Hi.", background=True, extra_body={"webhook_url": hook}
        )
        eventually(lambda: calls or None, every=0.05, what="no webhook call")
    finally:
        server.shutdown()
    event = json.loads(calls[0])
    assert event["type"] == "job.done" and event["data"]["job_id"] == response.id
    assert client.responses.retrieve(response.id).status == "completed"


def test_a_background_response_cancelled_while_queued_ends_cancelled(client, stack):
    slow = {"max_output_tokens": 400}
    running = [
        client.responses.create(model="sim-mini", input=f"Keep busy {i}", background=True, **slow)
        for i in range(3)
    ]
    queued = client.responses.create(model="sim-mini", input="Never mind", background=True)
    assert client.responses.retrieve(queued.id).status == "queued"
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(queued.id).status == "cancelled"
    for response in running:
        client.responses.cancel(response.id)
    assert not [r for r in stack.sim_requests() if r["job_id"] == queued.id]


def test_a_background_stream_resumes_after_a_sequence_number(client, stack):
    queued = client.responses.create(model="sim-mini", input="Count.", background=True)
    url = f"{stack.gateway_url}/responses/{queued.id}"

    def events(after: int | None) -> list[dict]:
        params = {"stream": "true", **({"starting_after": after} if after is not None else {})}
        with requests.get(url, params=params, stream=True, timeout=30) as reply:
            return [json.loads(x[6:]) for x in reply.iter_lines() if x.startswith(b"data: ")]

    whole = events(None)
    assert whole[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in whole] == list(range(len(whole)))
    assert events(4) == whole[5:]


def test_previous_response_id_carries_the_conversation(client, stack):
    first = client.responses.create(model="sim-mini", input="My name is Ada.")
    second = client.responses.create(
        model="sim-mini", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    sent = stack.sim_requests()[-1]["body"]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "My name is Ada.",
        "What is my name?",
    ]
    assert sent[1]["role"] == "assistant" and sent[1]["content"] == first.output_text


def test_a_response_not_stored_is_not_kept(client):
    response = client.responses.create(model="sim-mini", input="Forget me.", store=False)
    assert response.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_errors_keep_openais_shapes(client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="no-such-model", input="hi")
    assert missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="sim-mini", input=[{"type": "web_search_call"}])
    assert bad.value.body["param"] == "input[0].type"
    with pytest.raises(openai.BadRequestError) as tool:
        client.responses.create(model="sim-mini", input="hi", tools=[{"type": "web_search"}])
    assert tool.value.body["param"] == "tools[0]"


def test_a_batch_of_responses_lines_completes_with_response_objects(client):
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "sim-mini", "input": f"Line {i}", "max_output_tokens": 8},
        }
        for i in range(20)
    ]
    lines.append({"custom_id": "bad", "url": "/v1/responses", "body": {"model": "sim-mini"}})
    uploaded = client.files.create(
        file=("in.jsonl", "\n".join(json.dumps(line) for line in lines).encode()),
        purpose="batch",
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )

    def ended():
        now = client.batches.retrieve(batch.id)
        return now if now.status in ("completed", "failed", "cancelled", "expired") else None

    done = eventually(ended, timeout=60, every=0.3)
    assert (done.status, done.request_counts.completed, done.request_counts.failed) == (
        "completed",
        20,
        1,
    )
    output = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    bodies = {line["custom_id"]: line["response"]["body"] for line in output}
    assert all(
        b["object"] == "response" and b["output"][0]["type"] == "message" for b in bodies.values()
    )
    errors = client.files.content(done.error_file_id).text
    assert "input" in errors


def test_a_stored_responses_input_items_are_listed(client):
    response = client.responses.create(
        model="sim-mini",
        input=[
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
            {"role": "user", "content": [{"type": "input_text", "text": "Second"}]},
        ],
    )
    items = client.responses.input_items.list(response.id).data
    assert [(item.role, item.content[0].text) for item in items] == [
        ("user", "First question"),
        ("assistant", "First answer"),
        ("user", "Second"),
    ]
