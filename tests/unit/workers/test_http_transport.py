"""Provider calls over pooled connections: kept alive between calls, replaced when the
server closed one while it was idle, and sent through a proxy the environment names."""

from __future__ import annotations

import contextlib
import http.client
import time
from collections.abc import Iterator

import pytest
from chatq.shared.errors import JobCancelled
from chatq.shared.settings import ProviderTimeouts
from chatq.workers.provider import Endpoint, ProviderClient, StreamState

from tests.unit.workers.fakes import HI, QuietHandler, serve

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


class Provider:
    """An HTTP/1.1 provider that notes which connection each request came on."""

    def __init__(self) -> None:
        self.connections: list[tuple[str, int]] = []
        self.close_after_answer = False
        provider = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                provider.connections.append(self.client_address)
                self.reply(200, HI)
                self.close_connection = provider.close_after_answer  # without saying so

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"


@pytest.fixture()
def provider() -> Iterator[Provider]:
    running = Provider()
    yield running
    running.server.shutdown()


def client() -> ProviderClient:
    return ProviderClient(timeouts=ProviderTimeouts(connect=2, read=10))


def test_calls_one_after_another_share_a_connection(provider):
    calls = client()
    for n in range(3):
        assert calls.complete(Endpoint(provider.url), BODY, job_id=f"j{n}").completion.choices
    assert len(set(provider.connections)) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(provider):
    provider.close_after_answer = True
    calls = client()
    for n in range(3):
        assert calls.complete(Endpoint(provider.url), BODY, job_id=f"j{n}").completion.choices
        time.sleep(0.2)  # idle: the server's close arrives
    assert len(set(provider.connections)) == 3


def test_an_endpoint_behind_a_proxy_is_reached_through_it(provider, monkeypatch):
    relayed: list[str] = []

    class Proxy(QuietHandler):
        def do_POST(self) -> None:  # a forward proxy: the request line names the whole URL
            relayed.append(self.path)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            upstream = http.client.HTTPConnection(self.path.split("/")[2])
            upstream.request("POST", self.path, body=body)
            answer = upstream.getresponse()
            self.reply(answer.status, answer.read())

    proxy = serve(Proxy)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        reply = client().complete(Endpoint(provider.url), BODY, job_id="j")
    finally:
        proxy.shutdown()
    assert reply.completion.first.message.content == "hi"
    assert relayed == [f"{provider.url}/chat/completions"]


def test_a_stream_through_a_proxy_stops_when_its_job_is_aborted(monkeypatch):
    class SlowStreamingProxy(QuietHandler):
        """A forward proxy whose upstream streams one event every 50 ms for a minute."""

        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            event = b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'
            chunk = b"%x\r\n%s\r\n" % (len(event), event)
            with contextlib.suppress(OSError):  # the client went
                for _ in range(1200):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(0.05)

    proxy = serve(SlowStreamingProxy)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    calls = client()
    chunks = calls.stream(
        Endpoint("http://provider.invalid/v1"), BODY, job_id="j", state=StreamState()
    )
    try:
        next(chunks)
        aborted_at = time.monotonic()
        calls.aborts.abort("j")
        with pytest.raises(JobCancelled):
            for _ in chunks:
                pass
        assert time.monotonic() - aborted_at < 1.0
    finally:
        proxy.shutdown()
