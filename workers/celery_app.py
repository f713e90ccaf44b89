"""The Celery application of chatq workers: all configuration comes from ``chatq.shared.settings``.

Start a worker with ``chatq worker`` (or ``celery -A chatq.workers.celery_app worker``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging
from chatq.shared.celery_config import CELERY_AMQP, celery_config
from chatq.shared.logs import configure_logging
from chatq.shared.settings import get_settings

_settings = get_settings()
app = Celery(
    "chatq",
    amqp=CELERY_AMQP,
    include=[
        "chatq.workers.tasks",
        "chatq.workers.shutdown",
        "chatq.workers.exporter",
        "chatq.workers.recovery",
        "chatq.workers.dispatcher",
        "chatq.workers.cancels",
        *(["chatq.workers.bench_tasks"] if _settings.bench_tasks else []),
    ],
)
app.conf.update(celery_config(_settings))


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """chatq's own log lines (with job and request ids), not Celery's default setup."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
