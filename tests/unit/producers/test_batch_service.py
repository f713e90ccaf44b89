"""The batch object in OpenAI's shape, from its Redis record."""

from __future__ import annotations

import json

from chatq.producers.batch_service import batch_object


def test_a_batch_record_reads_as_an_openai_batch():
    record = {
        "status": "in_progress",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-1",
        "completion_window": "24h",
        "created_at": "100",
        "in_progress_at": "101",
        "expires_at": "86500",
        "metadata": json.dumps({"team": "a"}),
        "total": "10",
        "done": "6",
        "failed": "1",
        "invalid": "2",
    }
    batch = batch_object("batch_1", record)
    assert batch["object"] == "batch" and batch["id"] == "batch_1"
    assert batch["request_counts"] == {"total": 10, "completed": 6, "failed": 3}
    assert (batch["created_at"], batch["in_progress_at"], batch["completed_at"]) == (100, 101, None)
    assert batch["metadata"] == {"team": "a"} and batch["errors"] is None
    assert batch["output_file_id"] is None
