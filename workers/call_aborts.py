"""Provider calls stopped from outside: a job cancelled while its call runs has its
connection shut down, so the provider stops generating, and its call ends as cancelled
rather than being tried again."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

ABORT_MEMORY_S = 600.0  # an abort that found no call is kept this long, for the next try


class CallAborts:
    """The sockets of the calls running in this process, by job id, and the jobs whose
    calls were aborted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._sockets: dict[str, socket.socket] = {}
        self._aborted: dict[str, float] = {}  # job id -> when
        self._lock = threading.Lock()

    def opened(self, job_id: str, sock: socket.socket) -> None:
        """The job's call now runs on ``sock``; if the job was aborted already, it is shut."""
        with self._lock:
            self._sockets[job_id] = sock
            aborted = job_id in self._aborted
        if aborted:
            _shut(sock)

    def closed(self, job_id: str) -> None:
        with self._lock:
            self._sockets.pop(job_id, None)

    def abort(self, job_id: str) -> bool:
        """Shuts the job's call down, if one runs here; whether one did."""
        now = self.clock()
        with self._lock:
            self._aborted = {j: t for j, t in self._aborted.items() if now - t < ABORT_MEMORY_S}
            self._aborted[job_id] = now
            sock = self._sockets.get(job_id)
        if sock is not None:
            _shut(sock)
        return sock is not None

    def aborted(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._aborted


def _shut(sock: socket.socket) -> None:
    """Both directions closed: the reader wakes at once, and the server sees the peer go."""
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)
