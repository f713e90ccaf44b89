"""A bound on graceful shutdown: SIGTERM lets in-flight calls finish, but not forever.

Celery's warm shutdown waits for every running task. After ``shutdown_grace_s`` the worker
moves on to a cold shutdown; the messages of tasks still running go back to the queue (they are
acknowledged late) and their jobs run again elsewhere once their claims lapse.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from celery.signals import worker_shutting_down
from chatq.shared.settings import get_settings

log = logging.getLogger("chatq.worker")


@worker_shutting_down.connect
def bound_the_wait(sig: str | None = None, how: str | None = None, **_: Any) -> None:
    if how != "Warm":
        return
    grace = get_settings().shutdown_grace_s
    log.info("warm shutdown: in-flight jobs have %.0f s to finish", grace)
    timer = threading.Timer(grace, _cold_shutdown, args=(grace,))
    timer.daemon = True
    timer.start()


def _cold_shutdown(grace: float) -> None:
    log.warning("jobs still running after %.0f s: cold shutdown, they go back to the queue", grace)
    os.kill(os.getpid(), signal.SIGQUIT)
