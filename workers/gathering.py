"""Gathering: jobs that arrive within a few milliseconds of each other go to the provider as
one call. Identical sampled requests ask for one choice per job (OpenAI's ``n``, here);
embeddings requests put their inputs in one list (``chatq.workers.gathered_embeddings``).

Deterministic requests need no gathering: they share one call through ``chatq.workers.coalesce``.
Sampled ones (temperature > 0) must each get their own answer, but a provider that takes ``n``
bills their common prompt once and makes one request of the rate limit instead of ``n``.
Only a worker pool that runs many jobs at once (threads, gevent) gathers anything.

Waiting costs latency, so a job only waits if its key is hot: another job with the same key
came through this process within ``hot_s``. A one-off request is sent at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from chatq.shared.jobs import ChatRequest
from chatq.workers.coalesce import identity


class Gathered(Protocol):
    """What is gathered: anything with the id its outcome is found under."""

    @property
    def id(self) -> str: ...


T = TypeVar("T")
I = TypeVar("I", bound=Gathered)  # noqa: E741
Outcome = T | BaseException  # what one job's thread returns, or raises


def gather_key(request: ChatRequest) -> str | None:
    """The key of the requests this one may share a multi-choice call with, or None.

    Streams are sent alone (a multi-choice stream would interleave the answers), and so are
    requests that coalesce (they share one answer instead) or set ``n`` themselves.
    """
    sampled = bool(request.temperature) and not request.coalesce
    if request.stream or not sampled or request.n is not None:
        return None
    return identity(request)


@dataclass
class _Gathering(Generic[I, T]):
    limit: int
    alone: bool  # a one-off: runs at once, with no one to wait for
    used: int = 0
    jobs: list[I] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    outcomes: dict[str, Outcome[T]] = field(default_factory=dict)


class Gatherer(Generic[I, T]):
    """Gathers jobs by key for ``window_s`` (or until they fill ``limit``) and runs each
    gathering once, in the thread of the job that opened it; every job's thread waits for
    its own outcome."""

    def __init__(
        self,
        run_group: Callable[[list[I]], dict[str, Outcome[T]]],
        *,
        window_s: float,
        max_size: int,
        hot_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        memory: int = 10_000,
    ):
        self.run_group = run_group
        self.window_s = window_s
        self.max_size = max_size
        self.hot_s = hot_s
        self.clock = clock
        self.memory = memory
        self._lock = threading.Lock()
        self._open: dict[str, _Gathering[I, T]] = {}
        self._last_seen: OrderedDict[str, float] = OrderedDict()

    def submit(self, key: str, job: I, *, limit: int, size: int = 1) -> T:
        """Runs ``job`` with the others of its key that arrive in the window: its outcome.

        A gathering holds up to ``limit`` (at most ``max_size``) of size, each job ``size``
        of it; a job that would overfill the open gathering closes it and opens the next.
        """
        with self._lock:
            gathering = self._open.get(key)
            if gathering is not None and gathering.used + size > gathering.limit:
                del self._open[key]  # full enough: it runs, and this job opens the next
                gathering.full.set()
                gathering = None
            opener = gathering is None
            if gathering is None:
                hot = self._seen_recently(key)
                capacity = min(limit, self.max_size)
                gathering = _Gathering(limit=capacity, alone=not hot or size >= capacity)
                if not gathering.alone:
                    self._open[key] = gathering
            gathering.jobs.append(job)
            gathering.used += size
            if not gathering.alone and gathering.used >= gathering.limit:
                self._open.pop(key, None)
                gathering.full.set()
        if gathering.alone:
            return self._run(gathering, job)
        if not opener:
            gathering.done.wait()
            return _unwrap(gathering.outcomes[job.id])
        gathering.full.wait(self.window_s)
        with self._lock:
            if self._open.get(key) is gathering:
                del self._open[key]
        return self._run(gathering, job)

    def _run(self, gathering: _Gathering[I, T], job: I) -> T:
        try:
            gathering.outcomes = self.run_group(gathering.jobs)
        except BaseException as exc:  # every waiting thread must hear of it
            gathering.outcomes = {j.id: exc for j in gathering.jobs}
        finally:
            gathering.done.set()
        return _unwrap(gathering.outcomes[job.id])

    def _seen_recently(self, key: str) -> bool:
        """Whether the key is hot; notes that it was seen now. Call with the lock held."""
        now = self.clock()
        last = self._last_seen.pop(key, None)
        self._last_seen[key] = now
        if len(self._last_seen) > self.memory:
            self._last_seen.popitem(last=False)
        return last is not None and now - last <= self.hot_s


def _unwrap(outcome: Outcome[T]) -> T:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
