"""Celery task events for one chat job in N: Flower shows a sample of chat traffic, and the
hot path stops paying three events per job (the worker's PUBLISHes, and Flower's reading).

Celery decides whether a task sends events once per task type (``Task.send_events``); the
decision per job is made here, in the task's execution strategy: it hands Celery's own
strategy an event dispatcher that drops the events of jobs outside the sample. A job is in
the sample or not by its id, so Flower sees every event of the jobs it sees.
"""

from __future__ import annotations

import zlib
from typing import Any

from celery.worker.strategy import default
from chatq.shared.settings import get_settings


def in_sample(task_id: str, every: int) -> bool:
    """Whether the job with this id is one of the one-in-``every`` whose events are sent
    (``every`` 0: none, as each job's end publishes its own event for Flower)."""
    if every <= 0:
        return False
    return every == 1 or zlib.crc32(task_id.encode()) % every == 0


class SampledDispatcher:
    """An event dispatcher that sends a task's events only for the jobs in the sample."""

    def __init__(self, dispatcher: Any, every: int):
        self._dispatcher = dispatcher
        self.every = every

    def send(self, type: str, *args: Any, **fields: Any) -> Any:
        uuid = fields.get("uuid")
        if uuid is not None and not in_sample(uuid, self.every):
            return None
        return self._dispatcher.send(type, *args, **fields)

    def __getattr__(self, name: str) -> Any:  # enabled, groups...: the real dispatcher's
        return getattr(self._dispatcher, name)


class _SampledConsumer:
    """The worker's consumer, as the strategy sees it: its events sampled."""

    def __init__(self, consumer: Any, every: int):
        self._consumer = consumer
        dispatcher = consumer.event_dispatcher
        self.event_dispatcher = dispatcher and SampledDispatcher(dispatcher, every)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def sampled_strategy(task: Any, app: Any, consumer: Any, **options: Any) -> Any:
    """Celery's default strategy, with the task's events sampled (``CHATQ_TASK_EVENTS_EVERY``)."""
    settings = get_settings()
    every = 0 if settings.flower_events else settings.task_events_every
    if every != 1:
        consumer = _SampledConsumer(consumer, every)
    return default(task, app, consumer, **options)
