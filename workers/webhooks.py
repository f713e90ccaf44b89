"""Calls a job's webhook when it ends: one signed POST per try, retried with backoff by the
``chatq.webhook`` task. Delivery is recorded on the job record (``webhook`` field).

Each try checks the destination again (``chatq.shared.webhook_targets``), connects to the address
that was checked, and follows no redirect: a webhook never reaches an internal service.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Literal

import certifi
import urllib3
from chatq.shared.errors import JobNotFound
from chatq.shared.store import JobStore
from chatq.shared.webhook_targets import (
    Resolver,
    WebhookPolicy,
    WebhookRefused,
    WebhookTarget,
    resolve_target,
)
from chatq.shared.webhooks import SIGNATURE_HEADER, sign
from chatq.workers.rate_headers import retry_after_seconds

log = logging.getLogger("chatq.webhooks")

Outcome = Literal["delivered", "retry", "failed"]
RETRIED_STATUSES = frozenset({408, 409, 425, 429})


class WebhookSender:
    def __init__(
        self,
        store: JobStore,
        secret: str,
        *,
        policy: WebhookPolicy | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        resolve: Resolver | None = None,
    ):
        self.store = store
        self.secret = secret
        self.policy = policy or WebhookPolicy()
        self.resolve = resolve  # None: the system's DNS
        self.timeout_s = timeout_s
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
        try:
            target = resolve_target(url, self.policy, self.resolve)
        except WebhookRefused as exc:
            log.warning("webhook for job %s not sent: %s", job_id, exc.message)
            return self._note(job_id, "failed")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body, int(self.clock())),
            "User-Agent": "chatq-webhook/1",
            "Host": target.host_header,
        }
        try:
            response = self._post(target, body, headers)
        except urllib3.exceptions.HTTPError as exc:
            log.info("webhook for job %s not delivered: %s", job_id, exc)
            return self._note(job_id, "retry")
        if response.status < 300:
            return self._note(job_id, "delivered")
        if response.status >= 500 or response.status in RETRIED_STATUSES:
            self.retry_after = retry_after_seconds(response.headers)
            return self._note(job_id, "retry")
        log.warning("webhook for job %s refused with %d", job_id, response.status)
        return self._note(job_id, "failed")

    def _post(
        self, target: WebhookTarget, body: bytes, headers: dict[str, str]
    ) -> urllib3.BaseHTTPResponse:
        """One POST to the checked address; a redirect is an answer, not followed."""
        timeout = urllib3.Timeout(connect=self.timeout_s, read=self.timeout_s)
        pool: urllib3.HTTPConnectionPool
        if target.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                target.address,
                target.port,
                server_hostname=target.host,
                assert_hostname=target.host,
                cert_reqs="CERT_REQUIRED",
                ca_certs=certifi.where(),
                timeout=timeout,
                retries=False,
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                target.address, target.port, timeout=timeout, retries=False
            )
        with pool:
            return pool.urlopen(
                "POST", target.path, body=body, headers=headers, redirect=False, retries=False
            )

    def give_up(self, job_id: str) -> None:
        self._note(job_id, "failed")

    def _note(self, job_id: str, outcome: Outcome) -> Outcome:
        state = "retrying" if outcome == "retry" else outcome
        self.store.note_webhook(job_id, state)
        return outcome
