"""Cancels reaching the worker that runs the job: each worker process listens on
``keys.CANCELS``, where the script that cancels a running job names it, and stops that
job's provider call if it runs here (``CallAborts``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.signals import worker_ready
from chatq.shared import keys
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import get_settings
from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("chatq.worker")
RESUBSCRIBE_AFTER_S = 1.0


class CancelListener:
    """Stops the calls of jobs cancelled while this process runs them."""

    def __init__(
        self,
        redis: Redis,
        *,
        running: Callable[[], frozenset[str]],
        abort: Callable[[str], bool],
    ):
        self.redis = redis
        self.running = running
        self.abort = abort

    def take(self, job_id: str) -> bool:
        """Stops the job's call if it runs here; whether it did."""
        if job_id not in self.running():
            return False
        stopped = self.abort(job_id)
        log.info(
            "job %s cancelled while running: call %s", job_id, "stopped" if stopped else "next"
        )
        return stopped

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    pubsub.subscribe(keys.CANCELS)
                    while not stop.is_set():
                        message = pubsub.get_message(timeout=1.0)
                        if message is not None and message["type"] == "message":
                            self.take(message["data"])
            except RedisError as exc:
                log.warning("cancel channel lost (%s); subscribing again", exc)
                time.sleep(RESUBSCRIBE_AFTER_S)


@worker_ready.connect
def start_cancel_listener(sender: Any = None, **_: Any) -> None:
    from chatq.workers.tasks import get_runner

    runner = get_runner()
    listener = CancelListener(
        sync_client(get_settings().effective_redis_url),
        running=lambda: runner.lifecycle.running,
        abort=runner.calls.provider.aborts.abort,
    )
    threading.Thread(target=listener.run_forever, name="chatq-cancels", daemon=True).start()
