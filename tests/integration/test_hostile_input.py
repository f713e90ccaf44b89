"""Hostile input, as a tenant with a valid key would send it, against a real stack: webhooks
aimed at internal addresses, oversized and stalled bodies, requests carrying too much, and
the probes that already held (bad credentials, forged tokens, traversal, nesting)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from chatq.producers.tenants import TenantStore
from redis import Redis

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

SECRET = "hostile-suite-jwt-secret-long-enough-for-hs256"
WEBHOOK_SECRET = "whsec-hostile"
ALLOWED_HOST = "127.0.0.2"  # an internal receiver the operator allows
MAX_FILE_BYTES = 1_000_000
MAX_BATCH_LINES = 100


class Receiver(BaseHTTPRequestHandler):
    """Records every POST; answers 200, or a 302 to ``redirect_to`` if set."""

    calls: list[tuple[str, dict[str, str]]]
    redirect_to: str | None = None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).calls.append((self.path, dict(self.headers)))
        if type(self).redirect_to:
            self.send_response(302)
            self.send_header("Location", type(self).redirect_to)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def listen(host: str, *, redirect_to: str | None = None) -> tuple[ThreadingHTTPServer, type]:
    handler = type("Handler", (Receiver,), {"calls": [], "redirect_to": redirect_to})
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


@pytest.fixture(scope="module")
def internal():
    """A service on loopback that no webhook may reach."""
    server, handler = listen("127.0.0.1")
    yield server.server_address[1], handler
    server.shutdown()


stack = stack_fixture(
    gateway=True,
    extra_env={
        "CHATQ_AUTH_REQUIRED": "true",
        "CHATQ_JWT_SECRET": SECRET,
        "CHATQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CHATQ_WEBHOOK_ALLOW_HTTP": "true",  # so that the addresses are what is judged
        "CHATQ_WEBHOOK_ALLOW_HOSTS": ALLOWED_HOST,
        "CHATQ_WEBHOOK_MAX_RETRIES": "0",
        "CHATQ_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
        "CHATQ_MAX_BATCH_LINES": str(MAX_BATCH_LINES),
        "CHATQ_BODY_READ_TIMEOUT_S": "1",
    },
)


@pytest.fixture(scope="module")
def url(stack) -> str:
    return stack.gateway_url


@pytest.fixture(scope="module")
def key(stack) -> str:
    tenants = TenantStore(Redis.from_url(stack.redis_url, decode_responses=True))
    secret, _ = tenants.create_key("attacker")
    return secret


@pytest.fixture(scope="module")
def auth(key) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def job(url: str, auth: dict[str, str], **extra) -> requests.Response:
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}], **extra}
    return requests.post(f"{url}/jobs", json=body, headers=auth, timeout=30)


# -- webhooks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/hook",
        "http://10.0.0.1/hook",
        "http://172.16.0.1/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://localhost:{port}/hook",
        "http://0.0.0.0:{port}/hook",
        "ftp://example.com/hook",
    ],
)
def test_a_webhook_at_an_internal_address_is_refused_at_submit(url, auth, internal, target):
    port, handler = internal
    response = job(url, auth, webhook_url=target.format(port=port))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "webhook_url" and error["code"] in ("webhook_url_refused", None)
    assert handler.calls == []


def test_an_allowed_internal_receiver_gets_its_signed_call(url, auth, stack):
    server, handler = listen(ALLOWED_HOST)
    try:
        hook = f"http://{ALLOWED_HOST}:{server.server_address[1]}/done"
        assert job(url, auth, webhook_url=hook).status_code == 202
        eventually(lambda: handler.calls or None, timeout=30)
        path, headers = handler.calls[0]
        assert path == "/done" and "X-Chatq-Signature" in headers
    finally:
        server.shutdown()


def test_an_allowed_host_redirecting_to_loopback_is_not_followed(url, auth, internal, stack):
    port, internal_handler = internal
    server, handler = listen(ALLOWED_HOST, redirect_to=f"http://127.0.0.1:{port}/stolen")
    try:
        hook = f"http://{ALLOWED_HOST}:{server.server_address[1]}/bounce"
        job_id = job(url, auth, webhook_url=hook).json()["id"]
        eventually(lambda: handler.calls or None, timeout=30)
        record = stack.settings_redis()
        eventually(lambda: record.hget(f"chatq:job:{job_id}", "webhook") == "failed" or None)
        assert internal_handler.calls == []  # the redirect went nowhere
    finally:
        server.shutdown()


# -- sizes and limits ----------------------------------------------------------------------


def read_reply(sock: socket.socket) -> str:
    """A whole HTTP reply with a Content-Length, however many segments it came in."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_40_mb_body_gets_413_at_once_and_the_gateway_keeps_serving(url, auth):
    body = b'{"model": "sim-mini", "messages": [{"role": "user", "content": "' + b"x" * 40_000_000
    started = time.monotonic()
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {auth['Authorization']}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[:65536])  # the rest never needs to be sent
        reply = read_reply(sock)
    took = time.monotonic() - started
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    error = json.loads(reply.split("\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "request_too_large" and "CHATQ_MAX_REQUEST_BYTES" in error["message"]
    assert took < 2
    assert requests.get(url.removesuffix("/v1") + "/health", timeout=5).status_code == 200


def test_a_body_growing_past_the_limit_unannounced_is_refused_as_it_grows(url, auth):
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "sim-mini", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * 1_000_000

    response = requests.post(
        f"{url}/chat/completions",
        data=chunks(),  # chunked: no Content-Length to refuse it by
        headers={**auth, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_200000_messages_get_400_naming_the_limit(url, auth):
    messages = [{"role": "user", "content": "hi"}] * 200_000
    response = requests.post(
        f"{url}/chat/completions",
        json={"model": "sim-mini", "messages": messages},
        headers=auth,
        timeout=60,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages" and "CHATQ_MAX_MESSAGES" in error["message"]


@pytest.mark.parametrize(
    ("extra", "param", "setting"),
    [
        ({"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]},
         "tools", "CHATQ_MAX_TOOLS"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}] * 501}]},
         "messages", "CHATQ_MAX_IMAGE_PARTS"),
        ({"messages": [{"role": "user", "content": "x" * 2_000_001}]},
         "messages", "CHATQ_MAX_CONTENT_CHARS"),
    ],
)  # fmt: skip
def test_a_request_carrying_too_much_gets_400_naming_the_limit(url, auth, extra, param, setting):
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}], **extra}
    response = requests.post(f"{url}/chat/completions", json=body, headers=auth, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and setting in error["message"]


def test_oversized_metadata_gets_400(url, auth):
    response = job(url, auth, metadata={"k" * 65: "v"})
    assert response.status_code == 400 and response.json()["error"]["param"].startswith("metadata")


def test_an_upload_over_the_file_limit_gets_413(url, auth):
    response = requests.post(
        f"{url}/files",
        files={"file": ("big.jsonl", b"x" * (MAX_FILE_BYTES + 100_000))},
        data={"purpose": "batch"},
        headers=auth,
        timeout=30,
    )
    assert response.status_code == 413
    assert "CHATQ_MAX_FILE_BYTES" in response.json()["error"]["message"]


def test_a_batch_file_over_the_line_limit_gets_400(url, auth):
    line = json.dumps({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions"})
    lines = "\n".join(line for _ in range(MAX_BATCH_LINES + 1)).encode()
    response = requests.post(
        f"{url}/files",
        files={"file": ("many.jsonl", lines)},
        data={"purpose": "batch"},
        headers=auth,
        timeout=30,
    )
    assert response.status_code == 400 and "CHATQ_MAX_BATCH_LINES" in response.text


def test_a_stalled_body_times_out_with_408(url, auth):
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {auth['Authorization']}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{"
        )
        sock.sendall(head.encode())  # and then nothing more
        reply = read_reply(sock)
    assert reply.startswith("HTTP/1.1 408"), reply[:200]
    assert "CHATQ_BODY_READ_TIMEOUT_S" in reply


# -- what already held ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "credential",
    [
        None,
        "sk-not-a-key",
        jwt.encode({"tenant": "x", "exp": int(time.time()) + 300}, key=None, algorithm="none"),
        jwt.encode({"tenant": "x", "exp": int(time.time()) + 300}, "wrong-secret-" * 4),
        jwt.encode({"tenant": "x", "exp": int(time.time()) - 10}, SECRET),
    ],
    ids=["none", "unknown key", "alg none", "wrongly signed", "expired"],
)
def test_bad_credentials_get_401(url, credential):
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    response = job(url, headers)
    assert response.status_code == 401 and response.json()["error"]["type"]


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer caf\xe9",
        b"Bearer \xff\xfe\xfd",
        b"Bearer cq-\xff\xfe",
        b"Bearer \xe2\x80\xaea.b.c",
        b"Bearer a.\xff.c",
        b"Bearer cq-" + b"x" * 20_000,
        b"Bearer " + b"e" * 30_000 + b".x.y",
        b"\xff",
    ],
    ids=["latin-1", "not UTF-8", "key not UTF-8", "bidi JWT", "JWT not UTF-8", "long key",
         "long JWT", "no scheme"],
)  # fmt: skip
def test_a_hostile_credential_is_a_401_that_echoes_nothing(url, authorization):
    response = job(url, {"Authorization": authorization})
    assert response.status_code == 401
    assert "xxxx" not in response.json()["error"]["message"]


def test_another_tenants_job_is_404(url, auth, stack):
    tenants = TenantStore(Redis.from_url(stack.redis_url, decode_responses=True))
    victim, _ = tenants.create_key("victim")
    other = {"Authorization": f"Bearer {victim}"}
    job_id = job(url, other).json()["id"]
    assert requests.get(f"{url}/jobs/{job_id}", headers=auth, timeout=10).status_code == 404


@pytest.mark.parametrize("file_id", ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "file-x/../y"])
def test_a_file_id_cannot_climb_out_of_the_files_directory(url, auth, file_id):
    response = requests.get(f"{url}/files/{file_id}/content", headers=auth, timeout=10)
    assert response.status_code == 404
    assert "root:" not in response.text


def test_a_hostile_request_id_is_not_echoed(url, auth):
    hostile = "x" * 10 + "\x1b[31m<script>"
    response = requests.get(
        url.removesuffix("/v1") + "/health",
        headers={**auth, "X-Request-Id": hostile.encode("latin-1").decode("latin-1")},
        timeout=10,
    )
    assert response.headers.get("X-Request-Id") != hostile


def test_deeply_nested_json_gets_a_4xx(url, auth):
    depth = 100_000
    body = '{"model": "sim-mini", "messages": ' + "[" * depth + "]" * depth + "}"
    response = requests.post(
        f"{url}/chat/completions",
        data=body,
        headers={**auth, "Content-Type": "application/json"},
        timeout=30,
    )
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("session", ["x" * 5000, "../../etc", "a b", "caf\u00e9"])
def test_a_bad_session_header_is_a_400_naming_it_with_a_short_echo(url, auth, session):
    body = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    for path in ("/chat/completions", "/jobs"):
        reply = requests.post(
            url + path,
            json=body,
            headers={**auth, "X-Session-Id": session.encode("latin-1")},
            timeout=30,
        )
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error["param"] == "X-Session-Id" and "x" * 20 not in error["message"]


def test_text_json_cannot_carry_is_a_400_not_a_500(url, auth):
    raw = (
        '{"model": "sim-mini", "max_tokens": 3, '
        '"messages": [{"role": "user", "content": "lone \\ud800 surrogate"}]}'
    )
    for path in ("/chat/completions", "/jobs"):
        reply = requests.post(
            url + path,
            data=raw,
            headers={**auth, "Content-Type": "application/json"},
            timeout=30,
        )
        assert reply.status_code == 400, reply.text
        assert "surrogate" in reply.json()["error"]["message"]
