"""Calls a job's webhook when it ends: one signed POST per try, retried with backoff by the
``chatq.webhook`` task. Delivery is recorded on the job record (``webhook`` field)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Literal

import requests

from shared import keys
from shared.errors import JobNotFound
from shared.store import JobStore
from shared.webhooks import SIGNATURE_HEADER, sign
from workers.rate_headers import retry_after_seconds

log = logging.getLogger("chatq.webhooks")

Outcome = Literal["delivered", "retry", "failed"]
RETRIED_STATUSES = frozenset({408, 409, 425, 429})


class WebhookSender:
    def __init__(
        self,
        store: JobStore,
        secret: str,
        *,
        timeout_s: float = 10.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.secret = secret
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.session.trust_env = False
        self.clock = clock
        self.retry_after: float | None = None  # what the receiver asked for on the last try

    def body(self, job_id: str) -> bytes:
        record = self.store.get(job_id)
        event = {
            "object": "chat.job.event",
            "type": f"job.{record.status.value}",
            "created": int(self.clock()),
            "data": record.model_dump(mode="json", exclude={"webhook_url", "webhook"}),
        }
        return json.dumps(event, separators=(",", ":")).encode()

    def deliver(self, job_id: str, url: str) -> Outcome:
        """One try: delivered, worth retrying (network error, 5xx, 408/429), or failed."""
        self.retry_after = None
        try:
            body = self.body(job_id)
        except JobNotFound:
            log.warning("webhook for job %s not sent: its record expired", job_id)
            return "failed"
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body, int(self.clock())),
            "User-Agent": "chatq-webhook/1",
        }
        try:
            response = self.session.post(url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            log.info("webhook for job %s not delivered: %s", job_id, exc)
            return self._note(job_id, "retry")
        if response.status_code < 300:
            return self._note(job_id, "delivered")
        if response.status_code >= 500 or response.status_code in RETRIED_STATUSES:
            self.retry_after = retry_after_seconds(response.headers)
            return self._note(job_id, "retry")
        log.warning("webhook for job %s refused with %d", job_id, response.status_code)
        return self._note(job_id, "failed")

    def give_up(self, job_id: str) -> None:
        self._note(job_id, "failed")

    def _note(self, job_id: str, outcome: Outcome) -> Outcome:
        state = "retrying" if outcome == "retry" else outcome
        record = keys.job_key(job_id)
        if self.store.redis.exists(record):  # never revive an expired record without its TTL
            self.store.redis.hset(record, "webhook", state)
        return outcome
