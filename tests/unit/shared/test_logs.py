"""Log records carry the job and request ids of their context, as text or JSON."""

from __future__ import annotations

import json
import logging

from chatq.shared.logs import ContextFilter, JsonFormatter, job_id_var, request_id_var


def record(message: str) -> logging.LogRecord:
    entry = logging.LogRecord("chatq.worker", logging.INFO, __file__, 1, message, (), None)
    ContextFilter().filter(entry)
    return entry


def test_json_lines_carry_the_ids_of_their_context():
    job, request = job_id_var.set("job_1"), request_id_var.set("req_9")
    try:
        line = JsonFormatter().format(record("job job_1 done"))
    finally:
        job_id_var.reset(job)
        request_id_var.reset(request)
    entry = json.loads(line)
    assert entry["job_id"] == "job_1" and entry["request_id"] == "req_9"
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "INFO",
        "chatq.worker",
        "job job_1 done",
    )


def test_outside_a_job_the_ids_are_null():
    entry = json.loads(JsonFormatter().format(record("idle")))
    assert entry["job_id"] is None and entry["request_id"] is None
