"""A provider request tells when it has been written, before its answer is read."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from chatq.shared.settings import ProviderTimeouts
from chatq.workers.provider import Endpoint, ProviderClient
from chatq.workers.request_sent import when_sent

from tests.unit.workers.fakes import HI, QuietHandler, serve


@pytest.fixture()
def provider() -> Iterator[tuple[str, threading.Event]]:
    told = threading.Event()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            told.wait(5)  # answers only once the sender has been told its request left
            self.reply(200, HI)

    server = serve(Handler)
    yield f"http://127.0.0.1:{server.server_port}/v1", told
    server.shutdown()


def test_the_callback_runs_once_after_the_request_is_written(provider):
    url, told = provider
    client = ProviderClient(timeouts=ProviderTimeouts(connect=2, read=10))
    calls: list[int] = []

    def sent() -> None:
        calls.append(1)
        told.set()

    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    with when_sent(sent):
        reply = client.complete(Endpoint(url), body, job_id="job-1")
        assert reply.completion.first.message.content == "hi"
        client.complete(Endpoint(url), body, job_id="job-2")  # told about the first only
    assert calls == [1]
    client.complete(Endpoint(url), body, job_id="job-3")
    assert calls == [1]
