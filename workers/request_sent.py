"""The moment a provider request has been written to its connection, told to whoever waits.

A thread that passes the limiter's send gate may still be held before its request leaves:
urllib3's Python code between the gate and the socket needs the GIL, which 200 threads share.
On a loaded 2-core machine that took up to 26 ms (measured against the simulator's arrival
times), a good part of the gate's 80 ms margin. The provider's connections
(``chatq.workers.http_transport``, and the urllib3 pools here for proxied endpoints) call
``when_sent``'s callback right after a request is written, so the limiter can count the
call as sent when it really was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_on_sent: ContextVar[Callable[[], None] | None] = ContextVar("chatq_on_sent", default=None)


@contextmanager
def when_sent(callback: Callable[[], None]) -> Iterator[None]:
    """Calls ``callback`` once, right after this thread's next request has been written."""
    token = _on_sent.set(callback)
    try:
        yield
    finally:
        _on_sent.reset(token)


def tell_sent() -> None:
    """Called by a connection right after it has written this thread's request."""
    callback = _on_sent.get()
    if callback is not None:
        _on_sent.set(None)
        callback()


class _Telling:
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]
        tell_sent()


class TellingHTTPConnection(_Telling, HTTPConnection):
    pass


class TellingHTTPSConnection(_Telling, HTTPSConnection):
    pass


class TellingHTTPPool(HTTPConnectionPool):
    ConnectionCls = TellingHTTPConnection


class TellingHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = TellingHTTPSConnection


POOL_CLASSES = {"http": TellingHTTPPool, "https": TellingHTTPSPool}
