"""The Celery application of chatq workers: all configuration comes from ``shared.settings``.

Start a worker with ``chatq worker`` (or ``celery -A workers.celery_app worker``).
"""

from __future__ import annotations

from celery import Celery

import workers.kombu_fixes  # noqa: F401  (before any broker connection exists)
from shared.celery_config import celery_config
from shared.settings import get_settings

app = Celery("chatq", include=["workers.tasks", "workers.shutdown", "workers.exporter"])
app.conf.update(celery_config(get_settings()))
