"""Publishes an answer's deltas so that a retried attempt never repeats what consumers have.

An attempt that breaks off mid-stream is retried; the new attempt's text is published only from
where the consumers' copy ends. If the new text does not begin with what they already have (a
non-deterministic model), the job cannot be mended and fails with ``StreamDiverged``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.errors import ProviderError
from shared.jobs import Timings

if TYPE_CHECKING:
    from shared.store import JobStore
    from workers.hooks import StreamFilter


class StreamDiverged(ProviderError):
    code = "stream_diverged"


class DeltaPublisher:
    """Tracks the published text across attempts; ``publish`` is called with each new piece."""

    def __init__(self, publish: Callable[[str, bool], None], already_published: str = ""):
        self._publish = publish
        self.published = already_published
        self._attempt = ""

    def new_attempt(self) -> None:
        self._attempt = ""

    def feed(self, piece: str) -> None:
        self._attempt += piece
        published_len = len(self.published)
        if len(self._attempt) <= published_len:
            if not self.published.startswith(self._attempt):
                raise StreamDiverged("A retried stream gave a different answer than the first try")
            return
        if not self._attempt.startswith(self.published):
            raise StreamDiverged("A retried stream gave a different answer than the first try")
        fresh = self._attempt[published_len:]
        self._publish(fresh, published_len == 0)
        self.published = self._attempt


class DeltaSink:
    """Publishes a streamed answer's new text as deltas, through the hooks' stream filter."""

    def __init__(
        self,
        store: JobStore,
        clock: Callable[[], float],
        job_id: str,
        timings: Timings,
        rewrite: StreamFilter | None,
        *,
        published: bool,
    ):
        self.store = store
        self.clock = clock
        self.job_id = job_id
        self.timings = timings
        self.rewrite = rewrite
        self.published = published

    def publish(self, content: str, first: bool) -> None:
        self._append(self.rewrite.feed(content) if self.rewrite else content)

    def finish(self) -> None:
        if self.rewrite is not None:
            self._append(self.rewrite.flush())

    def _append(self, text: str) -> None:
        if not text:
            return
        first = not self.published
        if first:
            self.timings.first_token_at = self.clock()
        self.store.append_delta(self.job_id, text, first=first)
        self.published = True
