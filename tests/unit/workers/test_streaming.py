"""Delta publishing across retried attempts: consumers never see a piece twice."""

from __future__ import annotations

import pytest

from workers.streaming import DeltaPublisher, StreamDiverged


def collect() -> tuple[list[tuple[str, bool]], DeltaPublisher]:
    sent: list[tuple[str, bool]] = []
    return sent, DeltaPublisher(lambda content, first: sent.append((content, first)))


def test_first_attempt_publishes_every_piece_marking_the_first():
    sent, publisher = collect()
    for piece in ["Hel", "lo", " world"]:
        publisher.feed(piece)
    assert sent == [("Hel", True), ("lo", False), (" world", False)]


def test_retry_publishes_only_what_consumers_lack():
    sent, publisher = collect()
    publisher.feed("Hello")
    publisher.feed(" wor")
    publisher.new_attempt()
    for piece in ["He", "llo", " world", "!"]:
        publisher.feed(piece)
    assert "".join(c for c, _ in sent) == "Hello world!"
    assert sent[2:] == [("ld", False), ("!", False)]


def test_redelivered_job_resumes_after_text_published_by_a_dead_worker():
    sent: list[tuple[str, bool]] = []
    publisher = DeltaPublisher(lambda c, f: sent.append((c, f)), already_published="Hello")
    publisher.feed("Hello there")
    assert sent == [(" there", False)]


def test_a_different_answer_on_retry_fails_instead_of_garbling():
    _, publisher = collect()
    publisher.feed("Hello")
    publisher.new_attempt()
    with pytest.raises(StreamDiverged):
        publisher.feed("Goodbye")
