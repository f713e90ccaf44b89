"""A chat job's Celery message, built by chatq itself: Celery's task protocol 2, in the
envelope kombu's Redis transport keeps on a queue's list.

Built here rather than by Celery's ``send_task``, the message can go to Redis in the same
script call that records the job (``create_job.lua``), and costs a fraction of the CPU:
``send_task`` was a quarter of the gateway's (py-spy, ``chatq bench --scenario gateway``).
The worker is plain Celery, and any Celery client may still send ``chatq.chat`` tasks.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import uuid
from typing import Any

import orjson
from chatq.shared.celery_config import TASK_CHAT, chat_argsrepr

_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"
_REPLY_TO = str(uuid.uuid4())  # unused (results live in the job record), as Celery sets one
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def chat_message(job: dict[str, Any], queue: str) -> str:
    """The JSON kombu would LPUSH onto ``queue`` for a ``chatq.chat`` task of ``job`` (the
    ``ChatJob`` as JSON): its task id is the job id, and it keeps no result."""
    job_id = job["id"]
    argsrepr = chat_argsrepr(job)
    body = orjson.dumps([[job], {}, _EMBED])
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": TASK_CHAT,
            "id": job_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": job_id,
            "parent_id": None,
            "argsrepr": argsrepr,
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": True,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": job_id,
            "reply_to": _REPLY_TO,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": secrets.token_hex(16),
        },
    }
    return orjson.dumps(envelope).decode()
