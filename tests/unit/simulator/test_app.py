"""The simulator's HTTP app in OpenAI's wire format, through Starlette's test client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chatq.shared.tokens import count_prompt_tokens
from chatq.simulator.app import StreamCut, create_app
from chatq.simulator.config import SimConfig
from chatq.simulator.replies import reply_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

MESSAGES = [{"role": "user", "content": "hello"}]


class FakeTime:
    """A clock the test moves, and a sleep that only records how long it was asked to wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def client(time: FakeTime | None = None, **config: Any) -> TestClient:
    time = time or FakeTime()
    app = create_app(
        SimConfig(**config), clock=time.clock, wall_clock=lambda: 1_700_000_000.5, sleep=time.sleep
    )
    return TestClient(app)


def post(c: TestClient, headers: dict[str, str] | None = None, **body: Any):
    request = {"model": "sim-mini", "messages": MESSAGES, **body}
    return c.post("/v1/chat/completions", json=request, headers=headers)


def sse_events(response) -> list:
    assert response.text.endswith("\n\n")
    events = response.text.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    return [e[6:] if e == "data: [DONE]" else json.loads(e[6:]) for e in events]


def test_plain_completion_in_openai_shape():
    response = post(client(), max_tokens=5)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert (body["object"], body["created"], body["model"]) == (
        "chat.completion",
        1_700_000_000,
        "sim-mini",
    )
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["logprobs"] is None
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    expected = reply_for(
        {"model": "sim-mini", "messages": MESSAGES, "max_tokens": 5},
        echo=False,
        max_reply_tokens=64,
    )
    assert choice["message"]["content"] == expected.content
    assert body["usage"] == expected.usage()
    assert body["usage"]["completion_tokens"] == 5


def test_stream_events_in_openai_shape_match_the_plain_answer():
    c = client()
    plain = post(c).json()
    response = post(c, stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {ch["id"] for ch in chunks} == {chunks[0]["id"]}
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    pieces = [ch["choices"][0]["delta"]["content"] for ch in chunks[1:-2]]
    assert "".join(pieces) == plain["choices"][0]["message"]["content"]
    assert len(pieces) == plain["usage"]["completion_tokens"]  # one token per chunk
    assert chunks[-2]["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    assert all(ch["usage"] is None for ch in chunks[:-1])


def test_stream_without_usage_ends_with_the_finish_reason():
    events = sse_events(post(client(), stream=True, max_tokens=3))
    assert len(events) == 1 + 3 + 1 + 1
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in e for e in events[:-1])


def test_latency_ttft_then_one_gap_per_token():
    time = FakeTime()
    c = client(time, ttft_ms=200, tokens_per_s=50)
    post(c, max_tokens=4)
    assert time.sleeps == [pytest.approx(0.2 + 4 / 50)]
    time.sleeps.clear()
    post(c, max_tokens=4, stream=True)
    assert time.sleeps == [0.2, 0.02, 0.02, 0.02]


def test_no_sleep_at_all_with_zero_latency():
    time = FakeTime()
    c = client(time)
    post(c)
    post(c, stream=True)
    assert time.sleeps == []


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"model": "sim-mini"}, 400, "messages", "missing_required_parameter"),
        ({"model": "sim-mini", "messages": []}, 400, "messages", "empty_array"),
        ({"model": "sim-mini", "messages": "hi"}, 400, "messages", None),
        ({"messages": MESSAGES}, 400, "model", None),
        ({"model": "", "messages": MESSAGES}, 400, "model", None),
        (
            {"model": "sim-mini", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages[0].role",
            "invalid_value",
        ),
        (
            {"model": "sim-mini", "messages": MESSAGES, "max_tokens": 0},
            400,
            "max_tokens",
            "integer_below_min_value",
        ),
        (
            {"model": "sim-mini", "messages": MESSAGES, "max_tokens": "5"},
            400,
            "max_tokens",
            "integer_below_min_value",
        ),
        (
            {"model": "sim-mini", "messages": MESSAGES, "stream_options": {"include_usage": True}},
            400,
            "stream_options",
            None,
        ),
        ({"model": "nope", "messages": MESSAGES}, 404, None, "model_not_found"),
    ],
)
def test_invalid_requests_get_openai_errors(body, status, param, code):
    c = client(models=("sim-mini",))
    response = c.post("/v1/chat/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert c.get("/sim/requests").json()["requests"][0]["outcome"] == "invalid"
    assert c.get("/sim/stats").json()["invalid"] == 1


@pytest.mark.parametrize("raw", [b"{nope", b"", b'{"model": NaN}', b"\xff", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_a_400(raw):
    c = client()
    response = c.post("/v1/chat/completions", content=raw)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    entry = c.get("/sim/requests").json()["requests"][0]
    assert entry["outcome"] == "invalid"
    assert entry["body"] == (json.loads(raw) if raw == b"[1, 2]" else None)


def test_any_model_name_is_accepted_without_a_models_list():
    assert post(client(), model="gpt-4o-mini").json()["model"] == "gpt-4o-mini"


def test_rate_limit_answers_429_with_retry_after_on_the_injected_clock():
    time = FakeTime()
    c = client(time, rpm=2, quantum_s=0)
    assert post(c).status_code == 200
    time.now = 1.0
    ok = post(c)
    assert ok.headers["x-ratelimit-remaining-requests"] == "0"
    time.now = 2.5
    refused = post(c)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "58"
    assert refused.headers["retry-after-ms"] == "57500"
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "58.5s"
    assert "x-ratelimit-limit-tokens" not in refused.headers
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    time.now = 60.0
    assert post(c).status_code == 200
    stats = c.get("/sim/stats").json()
    assert (stats["requests"], stats["rate_limited"], stats["completed"]) == (4, 1, 3)
    log = c.get("/sim/requests").json()["requests"]
    assert [(e["t"], e["outcome"]) for e in log] == [
        (0.0, "ok"),
        (1.0, "ok"),
        (2.5, "rate_limited"),
        (60.0, "ok"),
    ]
    assert log[2]["retry_after"] == 57.5


def test_tpm_counts_prompt_and_max_tokens_and_sets_token_headers():
    c = client(tpm=100, quantum_s=0)
    prompt = count_prompt_tokens(["hello"])  # 9
    assert post(c, max_tokens=80).status_code == 200
    refused = post(c, max_tokens=10)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining-tokens"] == str(100 - prompt - 80)
    assert refused.headers["retry-after"] == "60"
    assert "tokens" in refused.json()["error"]["message"]


def test_retry_after_is_at_least_one_second():
    time = FakeTime()
    c = client(time, rpm=600)  # 10 a second
    for _ in range(10):
        assert post(c).status_code == 200
    time.now = 0.9999
    refused = post(c)
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["retry-after-ms"] == "1"


@pytest.mark.parametrize("kind", ["500", "503"])
def test_injected_server_errors(kind):
    c = client(fail_rate=1.0, faults=(kind,))
    response = post(c)
    assert response.status_code == int(kind)
    assert response.json()["error"]["type"] == "server_error"
    stats = c.get("/sim/stats").json()
    assert (stats["faults"], stats["faults_by_kind"], stats["completed"]) == (1, {kind: 1}, 0)
    assert c.get("/sim/requests").json()["requests"][0]["outcome"] == f"fault:{kind}"


def test_injected_timeout_hangs_then_answers_504():
    time = FakeTime()
    c = client(time, fail_rate=1.0, faults=("timeout",), hang_s=7.0)
    assert post(c).status_code == 504
    assert time.sleeps == [7.0]


def test_injected_cut_drops_a_stream_before_done():
    sent: list[bytes] = []
    c = client(fail_rate=1.0, faults=("cut",))
    with (
        pytest.raises(StreamCut),
        c.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES, "max_tokens": 10, "stream": True},
        ) as response,
    ):
        assert response.status_code == 200
        sent.extend(response.iter_bytes())
    text = b"".join(sent).decode()
    assert "[DONE]" not in text and 'finish_reason": "length' not in text
    assert text.count("data: ") == 1 + 5  # the role, then half of the ten pieces
    stats = c.get("/sim/stats").json()
    assert (stats["faults_by_kind"], stats["streamed"], stats["completed"]) == ({"cut": 1}, 1, 0)


def test_injected_cut_drops_a_plain_answer_mid_body():
    c = client(fail_rate=1.0, faults=("cut",))
    with pytest.raises(StreamCut):
        post(c)
    assert c.get("/sim/requests").json()["requests"][0]["outcome"] == "fault:cut"


def test_rate_limits_come_before_faults():
    time = FakeTime()
    c = client(time, rpm=1, fail_rate=1.0, faults=("500",))
    assert post(c).status_code == 500
    assert post(c).status_code == 429
    assert c.get("/sim/stats").json()["faults"] == 1


def test_faults_follow_the_seed_and_reset_replays_them():
    def statuses(c: TestClient) -> list[int]:
        return [post(c).status_code for _ in range(30)]

    c = client(fail_rate=0.5, faults=("500", "503"), seed=11)
    first = statuses(c)
    assert set(first) == {200, 500, 503}
    c.post("/sim/reset")
    assert statuses(c) == first
    assert statuses(client(fail_rate=0.5, faults=("500", "503"), seed=11)) == first


def test_log_keeps_body_and_job_id_but_never_the_key():
    c = client()
    post(c, headers={"X-Chatq-Job-Id": "job_1", "Authorization": "Bearer sk-secret"}, max_tokens=3)
    post(c)
    log = c.get("/sim/requests").json()["requests"]
    assert log[0]["job_id"] == "job_1" and log[1]["job_id"] is None
    assert log[0]["body"] == {"model": "sim-mini", "messages": MESSAGES, "max_tokens": 3}
    assert "sk-secret" not in json.dumps(log)


def test_log_is_bounded_and_limit_gives_the_most_recent():
    c = client(log_size=3)
    for i in range(5):
        post(c, max_tokens=i + 1)
    log = c.get("/sim/requests").json()["requests"]
    assert [e["body"]["max_tokens"] for e in log] == [3, 4, 5]
    recent = c.get("/sim/requests", params={"limit": 2}).json()["requests"]
    assert [e["body"]["max_tokens"] for e in recent] == [4, 5]
    assert c.get("/sim/requests", params={"limit": 0}).json()["requests"] == []
    assert c.get("/sim/requests", params={"limit": "x"}).status_code == 400
    assert c.get("/sim/stats").json()["requests"] == 5


def test_stats_count_tokens_of_completed_answers():
    c = client()
    plain = post(c).json()
    post(c, stream=True)
    stats = c.get("/sim/stats").json()
    assert stats == {
        "requests": 2,
        "invalid": 0,
        "rate_limited": 0,
        "faults": 0,
        "faults_by_kind": {"500": 0, "503": 0},
        "completed": 2,
        "streamed": 1,
        "active": 0,  # streams still being generated
        "abandoned": 0,  # streams stopped before their end
        "embedded": 0,  # inputs of /v1/embeddings
        "prompt_tokens": 2 * plain["usage"]["prompt_tokens"],
        "completion_tokens": 2 * plain["usage"]["completion_tokens"],
    }


def test_reset_clears_stats_log_and_limit_windows():
    c = client(rpm=1)
    post(c)
    assert post(c).status_code == 429
    assert c.post("/sim/reset").json() == {"status": "reset"}
    assert c.get("/sim/stats").json()["requests"] == 0
    assert c.get("/sim/requests").json() == {"requests": []}
    assert post(c).status_code == 200


def test_models_health_and_unknown_routes():
    c = client()
    assert c.get("/health").json() == {"status": "ok"}
    models = c.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["sim-mini", "sim-large"]
    assert [m["id"] for m in client(models=("a", "b")).get("/v1/models").json()["data"]] == [
        "a",
        "b",
    ]
    assert c.get("/v2/nothing").json()["error"]["message"] == "Not Found"
    wrong_method = c.get("/v1/chat/completions")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


def test_websocket_streams_the_same_chunks_as_sse():
    client = TestClient(create_app(SimConfig()))
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with client.websocket_connect("/v1/chat/completions") as ws:
        ws.send_text(json.dumps(body))
        frames = []
        while True:
            frame = ws.receive_text()
            frames.append(frame)
            if frame == "[DONE]":
                break
    chunks = [json.loads(f) for f in frames[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    plain = client.post("/v1/chat/completions", json={**body, "stream": False}).json()
    assert text == plain["choices"][0]["message"]["content"]


def test_n_choices_are_distinct_samples_billed_for_one_prompt():
    single = post(client(), temperature=0.9).json()
    body = post(client(), temperature=0.9, n=3).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    contents = [c["message"]["content"] for c in body["choices"]]
    assert contents[0] == single["choices"][0]["message"]["content"]
    assert len(set(contents)) == 3
    usage = body["usage"]
    assert usage["prompt_tokens"] == single["usage"]["prompt_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"n": 0}, "n"), ({"n": 129}, "n"), ({"n": "2"}, "n")],
)
def test_bad_n_is_refused(extra, param):
    response = post(client(), **extra)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK_WEATHER = [{"role": "user", "content": "get_weather for Oslo"}]


def test_n_streamed_choices_and_their_stats():
    c = client()
    plain = post(c, n=2).json()
    events = sse_events(post(c, n=2, stream=True, stream_options={"include_usage": True}))
    chunks = events[:-1]
    for i in range(2):
        mine = [
            ch["choices"][0] for ch in chunks if ch["choices"] and ch["choices"][0]["index"] == i
        ]
        text = "".join(ch["delta"].get("content") or "" for ch in mine)
        assert text == plain["choices"][i]["message"]["content"]
    assert chunks[-1]["usage"] == plain["usage"]
    stats = c.get("/sim/stats").json()
    assert stats["completion_tokens"] == 2 * plain["usage"]["completion_tokens"]


def test_pacing_covers_reasoning_and_tool_argument_fragments():
    time = FakeTime()
    c = client(time, tokens_per_s=100)
    reasoned = post(c, model="sim-reasoner", max_tokens=5, stream=True)
    assert time.sleeps == [0.01] * 4 and len(sse_events(reasoned)) == 1 + 5 + 1 + 1
    time.sleeps.clear()
    called = post(c, messages=ASK_WEATHER, tools=[WEATHER_TOOL], stream=True)
    steps = len(sse_events(called)) - 3  # less the role, the finish and [DONE]
    assert steps > 3 and time.sleeps == [0.01] * (steps - 1)
    time.sleeps.clear()
    post(c, messages=ASK_WEATHER, tools=[WEATHER_TOOL])
    assert time.sleeps == [pytest.approx(steps / 100)]


def test_pacing_of_n_choices_is_one_gap_per_round():
    time = FakeTime()
    c = client(time, tokens_per_s=50)
    post(c, n=3, max_tokens=4, stream=True)
    assert time.sleeps == [0.02, 0.02, 0.02]


def test_a_cut_stream_of_tool_calls_stops_half_way():
    c = client(fail_rate=1.0, faults=("cut",))
    request = {"model": "m", "messages": ASK_WEATHER, "tools": [WEATHER_TOOL], "stream": True}
    sent: list[bytes] = []
    with (
        pytest.raises(StreamCut),
        c.stream("POST", "/v1/chat/completions", json=request) as response,
    ):
        sent.extend(response.iter_bytes())
    text = b"".join(sent).decode()
    assert "[DONE]" not in text and "tool_calls" in text and '"finish_reason": "tool' not in text


def test_context_window_overflow_is_an_invalid_request():
    c = client(context_window=50)
    assert post(c, max_tokens=41).status_code == 200  # 9 prompt tokens + 41
    response = post(c, max_tokens=42)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("messages", "context_length_exceeded")
    assert error["message"].startswith("This model's maximum context length is 50 tokens.")
    assert c.get("/sim/requests").json()["requests"][-1]["outcome"] == "invalid"
    assert c.get("/sim/stats").json()["invalid"] == 1


def test_websocket_carries_tool_calls_and_n_choices():
    c = client()
    body = {"model": "sim-mini", "messages": ASK_WEATHER, "tools": [WEATHER_TOOL], "n": 2}
    with c.websocket_connect("/v1/chat/completions") as ws:
        ws.send_text(json.dumps({**body, "stream": True}))
        frames = []
        while (frame := ws.receive_text()) != "[DONE]":
            frames.append(json.loads(frame))
    plain = post(c, **body).json()
    for i in range(2):
        deltas = [f["choices"][0]["delta"] for f in frames if f["choices"][0]["index"] == i]
        calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
        expected = plain["choices"][i]["message"]["tool_calls"][0]
        assert calls[0]["id"] == expected["id"]
        assert (
            "".join(c["function"]["arguments"] for c in calls) == expected["function"]["arguments"]
        )


_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 25), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["type", "function", "name", "parameters", "properties", "required", "items",
                 "enum", "json_schema", "schema", "id", "arguments", "$ref", "anyOf"]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=10,
)  # fmt: skip
_MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "tool"])},
        optional={"content": _VALUES, "tool_calls": _VALUES, "tool_call_id": _VALUES},
    ),
    min_size=1,
    max_size=3,
)
_FUZZED = client()  # one app for every example: the log and stats only grow
_OPTIONS = ["tools", "tool_choice", "parallel_tool_calls", "response_format", "logprobs",
            "top_logprobs", "stop", "seed", "n", "stream"]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.fixed_dictionaries(
        {"model": st.sampled_from(["sim-mini", "sim-reasoner"]), "messages": _MESSAGES},
        optional=dict.fromkeys(_OPTIONS, _VALUES),
    )
)
def test_any_body_gets_an_answer_or_a_400_never_a_crash(body):
    assert post(_FUZZED, **body).status_code in (200, 400)
