"""The job-state commands are pure: built and parsed without Redis."""

from __future__ import annotations

import pytest
from chatq.shared import keys
from chatq.shared.errors import JobNotFound
from chatq.shared.job_state import AlreadyEnded, Busy, Claimed, EventCursor, JobCommands
from chatq.shared.jobs import JobStatus

COMMANDS = JobCommands(result_ttl_s=60, events_ttl_s=30, clock=lambda: 1000.0)


def test_a_claim_reply_is_one_typed_outcome():
    assert JobCommands.started(["claimed", 2]) == Claimed(2)
    assert JobCommands.started(["ended", "done"]) == AlreadyEnded(JobStatus.done)
    assert JobCommands.started(["busy", "12.5"]) == Busy(12.5)


def test_an_event_cursor_stops_at_the_end_event():
    cursor = EventCursor("j1", timeout=5)
    read = cursor.read()
    assert read.method == "xread" and read.args == ({keys.events_key("j1"): "0-0"},)
    delta = {"type": "delta", "chunk": '{"choices": []}'}
    end = {"type": "end", "result": '{"job_id": "j1", "status": "done"}'}
    events = cursor.take([[keys.events_key("j1"), [("1-0", delta), ("2-0", end), ("3-0", delta)]]])
    assert len(events) == 2 and cursor.ended and cursor.last_id == "2-0"


def test_the_first_deltas_of_a_stream_set_its_ttl_and_the_first_token_time():
    first = COMMANDS.deltas("j1", ['{"a": 1}'], first=True)
    assert [c.method for c in first] == ["xadd", "expire", "hset"]
    assert first[1].args == (keys.events_key("j1"), 30)
    assert [c.method for c in COMMANDS.deltas("j1", ['{"a": 1}'], first=False)] == ["xadd"]


def test_ending_a_job_that_does_not_exist_raises():
    assert JobCommands.ended(1, "j1") and not JobCommands.ended(0, "j1")
    with pytest.raises(JobNotFound):
        JobCommands.ended(-1, "j1")


def test_erasing_jobs_counts_dead_letters_first():
    commands = JobCommands.erase(["j1"], ["k1"])
    assert commands[0].args == (keys.DEAD_LETTERS, "j1")
    deleted = [c.args[0] for c in commands if c.method == "delete"]
    assert deleted == [keys.job_key("j1"), keys.events_key("j1"), keys.answer_key("k1")]
    assert JobCommands.erase([], []) == []
