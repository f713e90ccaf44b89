"""The Celery application of chatq workers: all configuration comes from ``shared.settings``.

Start a worker with ``chatq worker`` (or ``celery -A workers.celery_app worker``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

import workers.batched_pop
import workers.chat_message_acks
import workers.kombu_fixes  # noqa: F401
from shared.celery_config import celery_config
from shared.logs import configure_logging
from shared.settings import get_settings

app = Celery(
    "chatq", include=["workers.tasks", "workers.shutdown", "workers.exporter", "workers.recovery"]
)
app.conf.update(celery_config(get_settings()))


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """chatq's own log lines (with job and request ids), not Celery's default setup."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
