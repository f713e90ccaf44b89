"""The commands on a batch's keys, built without Redis."""

from __future__ import annotations

import json

from chatq.producers.batch_state import BatchCommands
from chatq.shared import keys
from chatq.shared.job_state import Command

RECORD = keys.batch_key("batch_1")


def test_creating_a_batch_writes_its_record_and_indexes_it_by_time():
    assert BatchCommands.create("batch_1", {"status": "validating"}, 100) == [
        Command("hset", (RECORD,), {"mapping": {"status": "validating"}}),
        Command("zadd", (keys.BATCHES, {"batch_1": 100})),
    ]


def test_a_cancel_asks_the_runner_to_stop_and_shows_cancelling():
    command = BatchCommands.cancel("batch_1", 7)
    assert command == Command(
        "hset", (RECORD,), {"mapping": {"cancel": "1", "status": "cancelling", "cancelling_at": 7}}
    )
    assert BatchCommands.ask_to_stop("batch_1") == Command("hset", (RECORD, "cancel", "1"))


def test_reaching_a_status_records_when():
    assert BatchCommands.reach("batch_1", "finalizing", 9).kwargs["mapping"] == {
        "status": "finalizing",
        "finalizing_at": 9,
    }


def test_progress_keeps_the_counts_only():
    counts = {"done": 1, "failed": 2, "invalid": 0, "skipped": 3, "total": 6, "started": 1.5}
    mapping = BatchCommands.progress("batch_1", counts).kwargs["mapping"]
    assert mapping == {"done": 1, "failed": 2, "invalid": 0, "skipped": 3, "total": 6}


def test_a_failed_batch_carries_openais_error_list():
    mapping = BatchCommands.fail("batch_1", "The input file is gone.", 5).kwargs["mapping"]
    assert mapping["status"] == "failed" and mapping["failed_at"] == 5
    assert json.loads(mapping["errors"])["data"] == [
        {"code": "batch_failed", "message": "The input file is gone."}
    ]


def test_starting_is_one_script_on_the_record():
    call = BatchCommands.start("batch_1", "/in.jsonl", 10)
    assert call.keys == [RECORD] and call.args == ["/in.jsonl", 10]
    assert "cancelling" in call.source
