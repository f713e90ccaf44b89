"""Celery configuration both sides share: task names, queues, serialisation, broker options.

Task names are stable strings so a client in any language can send them: the chat task takes
one positional argument, a ``ChatJob`` as JSON, and its Celery task id is the job id.
"""

from __future__ import annotations

from typing import Any

from chatq.shared.jobs import Priority
from chatq.shared.redis_clients import SentinelTarget
from chatq.shared.settings import Settings

TASK_CHAT = "chatq.chat"
TASK_NOOP = "chatq.noop"  # a no-op task: the baseline `chatq bench` compares the pipeline with
TASK_HTTP_PROBE = "chatq.http_probe"  # args: URL, JSON body; the bench's bare-Celery baseline
TASK_WEBHOOK = "chatq.webhook"  # args: job id, URL; calls the URL with the job's outcome

# kombu's Redis transport pools its connections; the default of 10 is too few for a worker
# that keeps hundreds of calls in flight and acknowledges each of them.
BROKER_MAX_CONNECTIONS = 1000
# kombu's Redis transport as chatq changes it (chatq.shared.broker), named as Celery takes it.
BROKER_TRANSPORT = "chatq.shared.broker:Transport"
BROKER_SENTINEL_TRANSPORT = "chatq.shared.broker:SentinelTransport"
CELERY_AMQP = "chatq.shared.broker:AMQP"  # Celery(amqp=...): connections that name them well


def chat_argsrepr(job: dict[str, Any]) -> str:
    """How a chat task's argument shows in Flower and task events: ids and sizes, never the
    messages (user text) or anything else the caller sent."""
    request = job.get("request") or {}
    messages = request.get("messages") or []
    return (
        f"(job {job.get('id')}, model {request.get('model')}, {len(messages)} messages, "
        f"stream={bool(request.get('stream'))})"
    )


def webhook_argsrepr(job_id: str) -> str:
    """A webhook task's arguments for display: the URL may carry a token, so it is left out."""
    return f"(job {job_id}, url hidden)"


def queue_for(priority: Priority, settings: Settings) -> str:
    return settings.bulk_queue if priority is Priority.bulk else settings.interactive_queue


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for this deployment, built from the one settings object."""
    url = settings.effective_redis_url
    transport: dict[str, Any] = {}
    broker = BROKER_TRANSPORT
    if (sentinel := SentinelTarget.parse(url)) is not None:
        url, transport = sentinel.celery_broker()
        broker = BROKER_SENTINEL_TRANSPORT
    return {
        "broker_url": url,
        "broker_transport": broker,
        "result_backend": url,
        "result_backend_transport_options": transport,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_default_queue": settings.interactive_queue,
        "task_create_missing_queues": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "broker_pool_limit": 50,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            "max_connections": BROKER_MAX_CONNECTIONS,
            # Sweep for messages of dead workers every few seconds, not every 100 s.
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s // 4)),
            "unacked_restore_throttle": 1,
            # A worker killed while it holds the sweep's lock would stop every sweep until the
            # lock expires (kombu's default: 300 s): keep that short too.
            "unacked_mutex_expire": max(5, min(60, settings.visibility_timeout_s // 2)),
            # Interactive first: a worker takes a bulk job only when no chat is waiting.
            "queue_order_strategy": "priority",
            **transport,  # the master's name, behind Sentinel
        },
        "redis_max_connections": BROKER_MAX_CONNECTIONS,
        "result_expires": settings.result_ttl_s,
        "worker_send_task_events": settings.task_events,
        # Not the sent event: Flower shows a task from the worker's events, and a PUBLISH per
        # job was a sixth of the gateway's CPU (py-spy, chatq bench --scenario gateway).
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }
