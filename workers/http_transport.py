"""Provider requests over kept-alive ``http.client`` connections, pooled per endpoint.

The standard library's client under urllib3, without urllib3's layers on top: a call to the
simulator costs 146 us of CPU this way against 410 through urllib3's pool (of which a
worker spends one per job, its largest cost). Kept from urllib3: a pooled connection that
the server has closed while it was idle is found by a zero-timeout poll and replaced, and
nothing is retried (a chat request is not idempotent). An endpoint the environment sends
through a proxy (``HTTPS_PROXY``, ``NO_PROXY``...) is still reached with urllib3's
``ProxyManager``; both kinds of answer are read through ``Reply``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import cache

import urllib3
from chatq.workers.request_sent import tell_sent
from urllib3.util.wait import wait_for_read

READ_SIZE = 65536


class Reply:
    """An answer's status and headers, its body read whole or as it comes; ``close``
    hands its connection back once the body was read (else drops it)."""

    status: int
    reason: str
    headers: Mapping[str, str]

    def read(self) -> bytes:
        raise NotImplementedError

    def chunks(self) -> Iterator[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def socket(self) -> socket.socket | None:
        """The connection's socket, where this answer knows it."""
        return None


class _PooledReply(Reply):
    def __init__(self, response: http.client.HTTPResponse, connection: _Connection, pool: Pool):
        self._response = response
        self._connection = connection
        self._pool = pool
        self.status = response.status
        self.reason = response.reason
        self.headers = response.headers

    def read(self) -> bytes:
        try:
            return self._response.read()
        finally:
            self.close()  # read whole: back to the pool; broken off: closed

    def chunks(self) -> Iterator[bytes]:
        while chunk := self._response.read1(READ_SIZE):
            yield chunk

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._response.isclosed() and not self._response.will_close:
            self._pool.put(connection)  # read to its end: the next request may use it
        else:
            connection.close()


class _ProxiedReply(Reply):
    def __init__(self, response: urllib3.BaseHTTPResponse):
        self._response = response
        self.status = response.status
        self.reason = response.reason or ""
        self.headers = response.headers

    def read(self) -> bytes:
        try:
            return self._response.data
        finally:
            self.close()

    def chunks(self) -> Iterator[bytes]:
        return self._response.stream(None)

    def close(self) -> None:
        if not self._response.isclosed():  # broken off: the connection is not reused
            self._response.close()
        self._response.release_conn()

    def socket(self) -> socket.socket | None:
        connection = getattr(self._response, "connection", None)
        return getattr(connection, "sock", None)


_Connection = http.client.HTTPConnection


class Pool:
    """Idle connections to one ``scheme://host:port``, the last one back used first."""

    def __init__(self, scheme: str, host: str, port: int | None, *, maxsize: int):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.maxsize = maxsize
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def post(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
        *,
        connect_s: float,
        read_s: float,
        on_socket: Callable[[socket.socket], None] | None = None,
    ) -> Reply:
        """Sends the request and reads the answer's status and headers; ``on_socket`` is
        given the connection's socket first (so that the call can be aborted)."""
        connection = self._take()
        try:
            if connection.sock is None:
                connection.timeout = connect_s
                connection.connect()
            if on_socket is not None:
                on_socket(connection.sock)
            connection.sock.settimeout(read_s)
            connection.request("POST", path, body=body, headers=headers)
            tell_sent()
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        return _PooledReply(response, connection, self)

    def put(self, connection: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self.maxsize:
                self._idle.append(connection)
                return
        connection.close()

    def _take(self) -> _Connection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._new()
            if connection.sock is not None and not wait_for_read(connection.sock, timeout=0.0):
                return connection  # still open, nothing unasked-for waiting on it
            connection.close()

    def _new(self) -> _Connection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, context=_tls())
        return http.client.HTTPConnection(self.host, self.port)


@cache
def _tls() -> ssl.SSLContext:
    """Certificates checked against the system's CAs, as urllib3 does by default."""
    return ssl.create_default_context()


def proxied(response: urllib3.BaseHTTPResponse) -> Reply:
    """A urllib3 answer (through a proxy), read as a ``Reply``."""
    return _ProxiedReply(response)
