"""Relays a provider's stream to a job's consumers, chunk by chunk, so that a retried attempt
never repeats what they already have.

An attempt that breaks off mid-stream is retried. Each choice of the new attempt is held back
until it goes beyond what consumers have of that choice; from there on its chunks go out as
they come. If a choice of the new attempt does not begin with what consumers have (a
non-deterministic model), the job cannot be mended and fails with ``StreamDiverged``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from chatq.shared.errors import ProviderError, ProviderUnavailable
from chatq.shared.jobs import Timings
from chatq.workers.provider import StreamChunk
from chatq.workers.streamed_answer import Relation, StreamedAnswer

if TYPE_CHECKING:
    from chatq.shared.completion import Completion
    from chatq.shared.store import JobStore
    from chatq.workers.hooks.rewrite import ChunkRewriter


class StreamDiverged(ProviderError):
    code = "stream_diverged"


class ChunkPublisher:
    """Appends chunks to one job's Redis stream, noting when the first one went out.

    A stream's opening chunk (the role, no text yet) waits for the next one, and the two go
    in one round trip: consumers get the first text no later, and sooner.
    """

    def __init__(
        self,
        store: JobStore,
        clock: Callable[[], float],
        job_id: str,
        timings: Timings,
        *,
        published: bool = False,
    ):
        self.store = store
        self.clock = clock
        self.job_id = job_id
        self.timings = timings
        self.published = published
        self._opening: list[dict[str, Any] | str] = []

    def publish(self, chunk: dict[str, Any] | str, *, opening: bool = False) -> None:
        """Sends ``chunk``; one marked ``opening`` (it says nothing yet) waits for the next."""
        if opening and not self.published and not self._opening:
            self._opening.append(chunk)
            return
        first = not self.published
        if first:
            self.timings.first_token_at = self.clock()
        self.store.append_deltas(self.job_id, [*self._opening, chunk], first=first)
        self._opening = []
        self.published = True

    def publish_all(self, chunks: Iterable[dict[str, Any]]) -> None:
        chunks = list(chunks)
        if not chunks:
            return
        first = not self.published
        if first:
            self.timings.first_token_at = self.clock()
        self.store.append_deltas(self.job_id, [*self._opening, *chunks], first=first)
        self._opening = []
        self.published = True

    def flush(self) -> None:
        """Sends an opening chunk still waiting (a stream that said nothing more)."""
        if self._opening:
            held, self._opening = self._opening[0], []
            self.publish(held)


def says_nothing(chunk: dict[str, Any]) -> bool:
    """Whether a chunk only opens its choices: a role, no text, no finish, no logprobs."""
    choices = chunk.get("choices") or ()
    return bool(choices) and all(
        not c.get("finish_reason")
        and c.get("logprobs") is None
        and all(k == "role" or not v for k, v in (c.get("delta") or {}).items())
        for c in choices
    )


class StreamRelay:
    """One job's stream across its attempts: what consumers have, and what goes to them."""

    def __init__(
        self,
        publisher: ChunkPublisher,
        rewriter: ChunkRewriter | None = None,
        published: StreamedAnswer | None = None,
    ):
        self.publisher = publisher
        self.rewriter = rewriter
        self.answer = published or StreamedAnswer()  # what consumers have, as the provider said
        self.attempt = StreamedAnswer()  # this attempt's choices not yet past what they have
        self.caught_up: set[int] = set()  # choices of this attempt past what consumers have
        self.finished: set[int] = set()  # choices this attempt finished

    def new_attempt(self) -> None:
        self.attempt = StreamedAnswer()
        self.caught_up = set()
        self.finished = set()

    def feed(self, chunk: StreamChunk) -> None:
        data = chunk.data
        choices = data.get("choices") or ()
        for choice in choices:
            index = choice.get("index", 0)
            if index not in self.answer.choices:  # consumers have none of it: nothing to skip
                self.caught_up.add(index)
            if choice.get("finish_reason"):
                self.finished.add(index)
        if all(c.get("index", 0) in self.caught_up for c in choices):  # the usual case
            self.answer.add(data)
            if choices:
                self._send(data, chunk.raw)
            return
        self.attempt.add(data)
        self.answer.add({k: v for k, v in data.items() if k != "choices"})
        fresh = [f for f in map(self._fresh, choices) if f is not None]
        if fresh:
            self._send({**data, "choices": fresh}, None)

    def finish(self, expected_choices: int) -> Completion:
        """The whole answer, once the provider's stream has ended; raises if it broke off."""
        if len(self.finished) < expected_choices:
            raise ProviderUnavailable("Provider stream ended before the answer was complete")
        if self.rewriter is not None and (held := self.rewriter.flush()) is not None:
            self.publisher.publish(held)
        self.publisher.flush()
        return self.answer.completion()

    def _fresh(self, choice: dict[str, Any]) -> dict[str, Any] | None:
        """What of this attempt's choice consumers lack, if anything."""
        index = choice.get("index", 0)
        if index in self.caught_up:
            self.answer.add({"choices": [choice]})
            return choice
        relation = self.attempt.relation(self.answer, index)
        if relation is Relation.DIVERGED:
            raise StreamDiverged("A retried stream gave a different answer than the first try")
        if relation is Relation.BEHIND:
            return None
        fresh = self.attempt.beyond(self.answer, index)
        self.caught_up.add(index)
        if fresh is not None:
            self.answer.add({"choices": [fresh]})
        return fresh

    def _send(self, data: dict[str, Any], raw: str | None) -> None:
        opening = says_nothing(data)
        if self.rewriter is not None:
            self.publisher.publish(self.rewriter.rewrite(data), opening=opening)
        else:
            self.publisher.publish(raw if raw is not None else data, opening=opening)
