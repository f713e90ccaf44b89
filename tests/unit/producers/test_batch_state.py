"""The commands on a batch's keys and its files' records, built without Redis."""

from __future__ import annotations

import json

import pytest
from chatq.producers.batch_state import BatchCommands, FileCommands, created
from chatq.shared import keys
from chatq.shared.job_state import Command

RECORD = keys.batch_key("batch_1")
FILE = keys.file_key("file-1")


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


def test_creating_a_batch_once_is_one_script_on_its_record_and_the_index():
    call = BatchCommands.create_once("batch_1", {"status": "validating", "request_hash": "h"}, 100)
    assert call.keys == [RECORD, keys.BATCHES]
    assert call.args == [100, "batch_1", "status", "validating", "request_hash", "h"]
    assert "EXISTS" in call.source


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ([1], (True, None)),
        ([0, "h"], (False, "h")),
        ([0, None], (False, None)),  # the first was made without a key: HGET's false
    ],
)
def test_a_create_once_reply_says_whether_it_created_and_the_first_requests_hash(reply, expected):
    assert created(reply) == expected


def test_a_batch_is_read_from_its_record_and_listed_from_the_index():
    assert BatchCommands.record("batch_1") == Command("hgetall", (RECORD,))
    assert BatchCommands.field("batch_1", "tenant") == Command("hget", (RECORD, "tenant"))
    assert BatchCommands.newest_first() == Command("zrevrange", (keys.BATCHES, 0, -1))
    assert BatchCommands.oldest_first() == Command("zrange", (keys.BATCHES, 0, -1))


def test_a_batch_is_driven_while_its_drivers_lock_exists():
    driver = keys.batch_driver_key("batch_1")
    assert BatchCommands.is_driven("batch_1") == Command("exists", (driver,))


def test_an_output_files_id_is_set_on_the_record_as_is():
    command = BatchCommands.set("batch_1", output_file_id="file-9")
    assert command == Command("hset", (RECORD,), {"mapping": {"output_file_id": "file-9"}})


def test_creating_a_file_writes_its_record_and_indexes_it_by_time():
    record = {"filename": "in.jsonl", "bytes": 10, "purpose": "batch", "created_at": 100}
    assert FileCommands.create("file-1", record, 100) == [
        Command("hset", (FILE,), {"mapping": record}),
        Command("zadd", (keys.FILES, {"file-1": 100})),
    ]


def test_creating_a_file_once_is_the_same_script_as_a_batchs():
    call = FileCommands.create_once("file-1", {"purpose": "batch"}, 100)
    assert call.keys == [FILE, keys.FILES]
    assert call.args == [100, "file-1", "purpose", "batch"]
    assert call.source == BatchCommands.create_once("batch_1", {}, 100).source


def test_a_file_is_read_listed_newest_first_and_deleted_with_its_index_entry():
    assert FileCommands.record("file-1") == Command("hgetall", (FILE,))
    assert FileCommands.newest_first() == Command("zrevrange", (keys.FILES, 0, -1))
    assert FileCommands.delete("file-1") == [
        Command("delete", (FILE,)),
        Command("zrem", (keys.FILES, "file-1")),
    ]
