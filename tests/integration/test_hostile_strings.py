"""Hostile strings in every field, header, path and query parameter the gateway reads, against a
real stack: each answer is a 2xx or a 4xx, never a 5xx; an error is a JSON body in OpenAI's
shape whose message shows no more than a short prefix of what was sent.

The strings: a lone surrogate (which no UTF-8 encoder can carry), NUL, 100,000 characters,
right-to-left and zero-width marks, a terminal escape, and, in headers, bytes that are not
UTF-8. The HTTP parser itself refuses a header holding NUL or an escape with a plain 400,
before the gateway sees it: that is a 4xx too."""

from __future__ import annotations

import json
from collections.abc import Callable
from string import ascii_lowercase
from typing import Any
from urllib.parse import quote

import pytest
import requests
from websockets.sync.client import connect

from tests.support.echoes import echoes, strings_in
from tests.support.stacks import stack_fixture


def word(i: int) -> str:
    return "".join(ascii_lowercase[(i // 26**place) % 26] for place in range(4))


# 100,000 characters, no run repeated. Words, not digits: a digit run this long takes the
# worker's personal-data masking ~45 s (a quadratic check in workers/hooks/privacy.py).
LONG = " ".join(word(i) for i in range(20_000))
HOSTILE = {
    "lone surrogate": "a\ud800b",
    "NUL": "a\x00b",
    "long": LONG,
    "bidi and zero-width": "\u202eabc\u200b\u2066",
    "escape": "\x1b[31m<script>",
}
HOSTILE_BYTES = {
    "latin-1": "caf\u00e9".encode("latin-1"),
    "not UTF-8": b"\xff\xfe\xfd",
    "NUL": b"a\x00b",
    "long": LONG[:60_000].encode(),
    "bidi and zero-width": "\u202eabc\u200b".encode(),
    "escape": b"\x1b[31m",
}
PARSER_REFUSAL = "Invalid HTTP request received."

# The plain gateway stack of test_gateway, booted once for all three modules.
gateway_stack = stack_fixture(shared="gateway", gateway=True)


@pytest.fixture(scope="module")
def url(gateway_stack) -> str:
    return gateway_stack.gateway_url


def assert_refused_or_served(reply: requests.Response, *sent: Any) -> None:
    """A 2xx, or a 4xx in OpenAI's shape showing no more than a short prefix of ``sent``."""
    assert reply.status_code < 500, reply.text[:300]
    if reply.status_code < 400:
        return
    if reply.text == PARSER_REFUSAL:  # uvicorn's, before any of chatq runs
        assert reply.status_code == 400
        return
    error = reply.json()["error"]
    assert isinstance(error["message"], str) and error["type"] == "invalid_request_error"
    for value in strings_in(sent):
        assert not echoes(value, error["message"]), error["message"][:300]
        assert not echoes(value, error["param"] or ""), error["param"][:300]


def post_json(url: str, body: Any, headers: dict[str, Any] | None = None) -> requests.Response:
    """``body`` as JSON text with ``\\ud800`` escapes, as a client in another language sends
    a lone surrogate (Python's own encoders refuse it)."""
    return requests.post(
        url,
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=60,
    )


def chat(**extra: Any) -> dict[str, Any]:
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    return {**body, **extra}


def one_message(**fields: Any) -> dict[str, Any]:
    return chat(messages=[{"role": "user", "content": "hi", **fields}])


FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "model": lambda v: chat(model=v),
    "content": lambda v: chat(messages=[{"role": "user", "content": v}]),
    "content part": lambda v: chat(messages=[{"role": "user", "content": [{"text": v}]}]),
    "role": lambda v: chat(messages=[{"role": v, "content": "hi"}]),
    "name": lambda v: one_message(name=v),
    "tool_call_id": lambda v: chat(messages=[{"role": "tool", "content": "x", "tool_call_id": v}]),
    "session_id": lambda v: chat(session_id=v),
    "session_ttl": lambda v: chat(session_ttl=v),
    "user": lambda v: chat(user=v),
    "fairness_key": lambda v: chat(fairness_key=v),
    "priority": lambda v: chat(priority=v),
    "metadata key": lambda v: chat(metadata={v: "x"}),
    "metadata value": lambda v: chat(metadata={"k": v}),
    "stop": lambda v: chat(stop=[v]),
    "logit_bias key": lambda v: chat(logit_bias={v: 1}),
    "tool name": lambda v: chat(tools=[{"type": "function", "function": {"name": v}}]),
    "an unknown field": lambda v: chat(some_future_field=v),
    "an unknown field's name": lambda v: chat(**{v: 1}),
}  # fmt: skip


def field_cases() -> list[Any]:
    cases = []
    for field in FIELDS:
        for kind in HOSTILE:
            cases.append(pytest.param(field, kind, id=f"{field}-{kind}"))
    return cases


@pytest.mark.parametrize(("field", "kind"), field_cases())
def test_a_hostile_string_in_a_request_field_is_never_a_5xx(url, field, kind):
    value = HOSTILE[kind]
    body = FIELDS[field](value)
    assert_refused_or_served(post_json(f"{url}/jobs", body), value)
    if kind in ("lone surrogate", "long"):  # what may be refused; the rest is /jobs' answer
        assert_refused_or_served(post_json(f"{url}/chat/completions", body), value)


def test_a_webhook_url_of_hostile_strings_is_a_400(url):
    for value in HOSTILE.values():
        reply = post_json(f"{url}/jobs", chat(webhook_url=f"https://{value}/hook"))
        assert reply.status_code == 400
        assert_refused_or_served(reply, value)


HEADERS = ["X-Session-Id", "Idempotency-Key", "traceparent", "tracestate", "X-Request-Id"]


@pytest.mark.parametrize("kind", HOSTILE_BYTES)
@pytest.mark.parametrize("header", HEADERS)
def test_a_hostile_header_is_never_a_5xx(url, header, kind):
    value = HOSTILE_BYTES[kind]
    sent = value.decode("latin-1")
    assert_refused_or_served(post_json(f"{url}/jobs", chat(), {header: value}), sent)
    assert_refused_or_served(post_json(f"{url}/chat/completions", chat(), {header: value}), sent)
    batch = {"input_file_id": "file-x", "endpoint": "/v1/chat/completions"}
    assert_refused_or_served(post_json(f"{url}/batches", batch, {header: value}), sent)
    upload = requests.post(
        f"{url}/files",
        files={"file": ("a.jsonl", b"{}\n")},
        data={"purpose": "batch"},
        headers={header: value},
        timeout=30,
    )
    assert_refused_or_served(upload, sent)


@pytest.mark.parametrize("kind", HOSTILE_BYTES)
def test_a_hostile_last_event_id_is_never_a_5xx(url, kind):
    job_id = post_json(f"{url}/jobs", chat()).json()["id"]
    value = HOSTILE_BYTES[kind]
    reply = requests.get(
        f"{url}/jobs/{job_id}/events", headers={"Last-Event-ID": value}, timeout=30
    )
    assert_refused_or_served(reply, value.decode("latin-1"))


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_last_event_id_on_the_websocket_is_refused_in_a_frame(url, kind):
    job_id = post_json(f"{url}/jobs", chat()).json()["id"]
    value = quote(HOSTILE[kind][:2000].encode("utf-8", "surrogatepass"), safe="")
    ws_url = url.replace("http://", "ws://") + f"/jobs/{job_id}/ws?last_event_id={value}"
    with connect(ws_url) as socket:
        frame = json.loads(socket.recv(timeout=30))
    assert frame["error"]["param"] == "last_event_id"
    assert not echoes(HOSTILE[kind], frame["error"]["message"])


PATHS = [
    ("GET", "/jobs/{}"),
    ("DELETE", "/jobs/{}"),
    ("GET", "/jobs/{}/events"),
    ("GET", "/files/{}"),
    ("GET", "/files/{}/content"),
    ("DELETE", "/files/{}"),
    ("GET", "/batches/{}"),
    ("POST", "/batches/{}/cancel"),
    ("GET", "/sessions/{}"),
    ("DELETE", "/sessions/{}"),
    ("GET", "/users/{}/profile"),
    ("DELETE", "/users/{}"),
    ("GET", "/files?purpose={}"),
    ("GET", "/batches?after={}"),
    ("GET", "/batches?limit={}"),
]


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_id_or_query_parameter_is_never_a_5xx(url, kind):
    value = HOSTILE[kind][:3000]  # a whole URL's worth; longer, and the HTTP parser refuses it
    sent = quote(value.encode("utf-8", "surrogatepass"), safe="")
    for method, path in PATHS:
        reply = requests.request(method, url + path.format(sent), timeout=30)
        assert_refused_or_served(reply, value)


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_strings_in_files_batches_and_profiles_are_never_a_5xx(url, kind):
    value = HOSTILE[kind]
    raw = value.encode("utf-8", "surrogatepass")
    for form in [
        {"files": {"file": ("a.jsonl", b"{}\n")}, "data": {"purpose": raw}},
        {"files": {"file": ("a.jsonl", raw + b"\n")}, "data": {"purpose": "batch"}},
    ]:
        assert_refused_or_served(requests.post(f"{url}/files", timeout=30, **form), value)
    batch = {"input_file_id": "file-x", "endpoint": "/v1/chat/completions"}
    for field in ("input_file_id", "endpoint", "completion_window"):
        assert_refused_or_served(post_json(f"{url}/batches", {**batch, field: value}), value)
    assert_refused_or_served(post_json(f"{url}/batches", {**batch, "metadata": {value: value}}))
    profile = json.dumps({"attributes": {value: value}})
    reply = requests.put(
        f"{url}/users/u-1/profile",
        data=profile,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert_refused_or_served(reply, value)
