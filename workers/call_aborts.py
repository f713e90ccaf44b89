"""Provider calls stopped from outside: a job cancelled while its call runs, or whose
deadline passes during it, has its connection shut down, so the provider stops generating,
and its call ends as cancelled rather than being tried again."""

from __future__ import annotations

import contextlib
import heapq
import socket
import threading
import time
from collections.abc import Callable

ABORT_MEMORY_S = 600.0  # an abort that found no call is kept this long, for the next try
CANCELLED = "cancelled"
DEADLINE = "deadline"


class CallAborts:
    """The sockets of the calls running in this process, by job id, and the jobs whose
    calls were aborted."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.clock = clock
        self.wall_clock = wall_clock
        self._sockets: dict[str, socket.socket] = {}
        self._aborted: dict[str, tuple[float, str]] = {}  # job id -> (when, why)
        self._lock = threading.Lock()
        self._deadlines: list[tuple[float, str]] = []  # (Unix time, job id), soonest first
        self._due = threading.Condition(self._lock)
        self._watcher: threading.Thread | None = None

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

    def abort(self, job_id: str, why: str = CANCELLED) -> bool:
        """Shuts the job's call down, if one runs here; whether one did."""
        now = self.clock()
        with self._lock:
            self._aborted = {
                j: (t, w) for j, (t, w) in self._aborted.items() if now - t < ABORT_MEMORY_S
            }
            self._aborted.setdefault(job_id, (now, why))
            sock = self._sockets.get(job_id)
        if sock is not None:
            _shut(sock)
        return sock is not None

    def aborted(self, job_id: str) -> str | None:
        """Why the job's call was stopped (``CANCELLED``, ``DEADLINE``), or None."""
        with self._lock:
            found = self._aborted.get(job_id)
        return found[1] if found is not None else None

    def expire_at(self, job_id: str, deadline: float) -> None:
        """Stops the job's call at ``deadline`` (Unix time), unless ``forget`` comes first."""
        with self._due:
            heapq.heappush(self._deadlines, (deadline, job_id))
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch, name="chatq-call-deadlines", daemon=True
                )
                self._watcher.start()
            self._due.notify()

    def forget(self, job_id: str) -> None:
        """The job's call is over: no deadline to watch for it."""
        with self._due:
            self._deadlines = [(at, j) for at, j in self._deadlines if j != job_id]
            heapq.heapify(self._deadlines)

    def _watch(self) -> None:
        while True:
            with self._due:
                while not self._deadlines:
                    self._due.wait()
                at, job_id = self._deadlines[0]
                wait_s = at - self.wall_clock()
                if wait_s > 0:
                    self._due.wait(timeout=wait_s)
                    continue
                heapq.heappop(self._deadlines)
            self.abort(job_id, DEADLINE)


def _shut(sock: socket.socket) -> None:
    """Both directions closed: the reader wakes at once, and the server sees the peer go."""
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)
