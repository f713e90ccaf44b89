"""HTTP batches as a test drives them: a JSONL file of lines uploaded and run through
``/v1/files`` and ``/v1/batches``, then its end awaited."""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.support.waiting import eventually

ENDED = ("completed", "failed", "cancelled", "expired")


def start_batch(
    gateway_url: str, lines: list[dict[str, Any]], endpoint: str = "/v1/chat/completions"
) -> dict[str, Any]:
    """The batch object of ``lines`` (each a JSONL line), uploaded and created."""
    text = "\n".join(json.dumps(line) for line in lines).encode()
    upload = requests.post(
        f"{gateway_url}/files",
        files={"file": ("in.jsonl", text)},
        data={"purpose": "batch"},
        timeout=30,
    ).json()
    create = {"input_file_id": upload["id"], "endpoint": endpoint, "completion_window": "24h"}
    return requests.post(f"{gateway_url}/batches", json=create, timeout=30).json()


def batch_ended(gateway_url: str, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    """The batch object once it has ended (completed, failed, cancelled or expired)."""

    def ended() -> dict[str, Any] | None:
        now = requests.get(f"{gateway_url}/batches/{batch_id}", timeout=10).json()
        return now if now["status"] in ENDED else None

    return eventually(ended, timeout=timeout, every=0.3, what="the batch still running")


def cancel_batch(gateway_url: str, batch_id: str) -> None:
    requests.post(f"{gateway_url}/batches/{batch_id}/cancel", timeout=30).raise_for_status()
