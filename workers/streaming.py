"""Publishes an answer's deltas so that a retried attempt never repeats what consumers have.

An attempt that breaks off mid-stream is retried; the new attempt's text is published only from
where the consumers' copy ends. If the new text does not begin with what they already have (a
non-deterministic model), the job cannot be mended and fails with ``StreamDiverged``.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.errors import ProviderError


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
