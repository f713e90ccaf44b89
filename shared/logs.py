"""Logging for every chatq process: one line per record, as text or JSON (``CHATQ_LOG_FORMAT``),
each carrying the job id and request id it concerns, from context variables.

The gateway sets the request id per HTTP request (``X-Request-Id``, made up if absent); it
travels with the job, and the worker sets both ids while it runs the job. Records at INFO
say what happened to which job, never the messages or any key.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

job_id_var: ContextVar[str | None] = ContextVar("chatq_job_id", default=None)
request_id_var: ContextVar[str | None] = ContextVar("chatq_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s [job=%(job_id)s req=%(request_id)s]"


class ContextFilter(logging.Filter):
    """Adds ``job_id`` and ``request_id`` to every record, from the current context."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = getattr(record, "job_id", None) or job_id_var.get()
        record.request_id = getattr(record, "request_id", None) or request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", None),
            "request_id": getattr(record, "request_id", None),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Sends every record of this process to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Celery's own line per task received and succeeded says less than chatq's line per job,
    # and carries no request id: keep only its warnings and errors.
    for noisy in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
