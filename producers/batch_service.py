"""OpenAI's Batch API over HTTP: batches created from uploaded files, run by the gateway.

A batch created with ``POST /v1/batches`` is run by a thread of some gateway process, the
batch's *driver*, which holds a renewed Redis lock. Every gateway looks for batches with no
live driver (their gateway died) and adopts them; the runner resumes where the output ends.
The run itself is ``chatq.producers.batch_runner.BatchRunner``, the same as ``chatq batch run``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from chatq.producers.batch_runner import BatchRunner
from chatq.producers.batch_state import TERMINAL, BatchStore
from chatq.producers.client import ChatqClient
from chatq.producers.files import FileStore
from chatq.producers.tenants import TenantStore
from chatq.shared import idempotency, tracing
from chatq.shared.errors import BatchNotFound, InvalidRequest, short
from chatq.shared.settings import Settings
from pydantic import BaseModel, Field
from redis import Redis
from redis.exceptions import LockError, RedisError

log = logging.getLogger("chatq.batches")

ADOPT_EVERY_S = 10.0


class CreateBatch(BaseModel):
    """The body of ``POST /v1/batches``."""

    input_file_id: str = Field(min_length=1)
    endpoint: Literal["/v1/chat/completions", "/v1/responses", "/v1/embeddings"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = None


class BatchService:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        files: FileStore,
        *,
        client_factory: Callable[[], ChatqClient] | None = None,
        lease_s: float = 30.0,
    ):
        self.settings = settings
        self.redis = redis
        self.batches = BatchStore(redis)
        self.files = files
        self.client_factory = client_factory or (lambda: ChatqClient(settings))
        self.lease_s = lease_s
        self._stopping = threading.Event()
        self._drivers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def create(
        self, request: CreateBatch, tenant: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Records the batch and starts driving it. With ``idempotency_key``, a retry of the
        same request gets the first one's batch; another request, ``IdempotencyKeyReused``."""
        source = self.files.get(request.input_file_id, tenant)
        if source["purpose"] != "batch":
            raise InvalidRequest(
                f"File '{request.input_file_id}' has purpose '{source['purpose']}', not 'batch'.",
                param="input_file_id",
            )
        batch_id = f"batch_{uuid.uuid4().hex}"
        if idempotency_key is not None:
            batch_id = idempotency.scoped_id(
                "batch", tenant, idempotency.check_key(idempotency_key)
            )
        now = int(time.time())
        record = {
            "status": "validating",
            "endpoint": request.endpoint,
            "input_file_id": request.input_file_id,
            "completion_window": request.completion_window,
            "created_at": now,
            "expires_at": now + self.settings.batch_completion_window_s,
            "metadata": json.dumps(request.metadata or {}),
        }
        if tenant is not None:
            record["tenant"] = tenant
        if (trace := tracing.traceparent()) is not None:  # the request's: the batch's parent
            record["traceparent"] = trace
        if idempotency_key is None:
            self.batches.create(batch_id, record, now)
        else:
            record["request_hash"] = idempotency.request_hash(request.model_dump(mode="json"))
            created, first = self.batches.create_once(batch_id, record, now)
            if not created:
                idempotency.check_same(first, record["request_hash"])
                return self.get(batch_id, tenant)
        self._start_driver(batch_id)
        return self.get(batch_id, tenant)

    def get(self, batch_id: str, tenant: str | None = None) -> dict[str, Any]:
        """The batch, if it exists and belongs to ``tenant``."""
        record = self.batches.record(batch_id)
        if not record or "endpoint" not in record or record.get("tenant") != tenant:
            raise BatchNotFound(f"No batch with id {short(batch_id)}.", param="batch_id")
        return batch_object(batch_id, record)

    def list(
        self, *, limit: int = 20, after: str | None = None, tenant: str | None = None
    ) -> dict[str, Any]:
        ids = [
            batch_id
            for batch_id in self.batches.ids(newest_first=True)
            if self.batches.field(batch_id, "tenant") == tenant
        ]
        if after is not None:
            ids = ids[ids.index(after) + 1 :] if after in ids else []
        page = [self.get(batch_id, tenant) for batch_id in ids[:limit]]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(ids) > limit,
        }

    def cancel(self, batch_id: str, tenant: str | None = None) -> dict[str, Any]:
        batch = self.get(batch_id, tenant)
        if batch["status"] not in TERMINAL and batch["status"] != "cancelling":
            self.batches.cancel(batch_id, _now())
        return self.get(batch_id, tenant)

    # Driving batches.

    def start(self) -> None:
        """Adopts batches left without a driver now, and every few seconds after."""
        threading.Thread(target=self._adopt_loop, name="chatq-batch-adopter", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _adopt_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.adopt_orphans()
            except RedisError as exc:
                log.warning("could not look for batches to run: %s", exc)
            self._stopping.wait(ADOPT_EVERY_S)

    def adopt_orphans(self) -> None:
        for batch_id in self.batches.ids():
            status = self.batches.field(batch_id, "status")
            running = status is not None and status not in TERMINAL
            if running and not self.batches.is_driven(batch_id):
                self._start_driver(batch_id)

    def _start_driver(self, batch_id: str) -> None:
        with self._lock:
            running = self._drivers.get(batch_id)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(
                target=self._drive, args=(batch_id,), name=f"chatq-{batch_id}", daemon=True
            )
            self._drivers[batch_id] = thread
            thread.start()

    def _drive(self, batch_id: str) -> None:
        lock = self.batches.driver_lock(batch_id, self.lease_s)
        if not lock.acquire(blocking=False):
            return  # another gateway drives it
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(lock, done), daemon=True)
        renewer.start()
        try:
            self._run(batch_id)
        except Exception as exc:  # the batch fails with a reason, never silently stops
            log.exception("batch %s failed", batch_id)
            self._fail(batch_id, f"The batch stopped on an internal error: {exc}")
        finally:
            done.set()
            with contextlib.suppress(LockError, RedisError):  # it lapsed: nothing to free
                lock.release()

    def _renew(self, lock: Any, done: threading.Event) -> None:
        while not done.wait(self.lease_s / 3):
            try:
                lock.reacquire()
            except (LockError, RedisError) as exc:
                log.warning("batch driver lock not renewed: %s", exc)

    def _run(self, batch_id: str) -> None:
        record = self.batches.record(batch_id)
        try:
            source = self.files.path(record["input_file_id"], record.get("tenant"))
        except Exception as exc:
            self._fail(batch_id, f"The input file is gone: {exc}")
            return
        if "in_progress_at" not in record:
            self.batches.set(batch_id, in_progress_at=_now())
        work = self.files.directory
        output = work / f"{batch_id}.output.jsonl"
        errors = work / f"{batch_id}.errors.jsonl"
        with self.client_factory() as client:
            tenant = record.get("tenant")
            privacy = TenantStore(self.redis).tenant(tenant).privacy if tenant else True
            runner = BatchRunner(
                client,
                source,
                output,
                errors,
                batch_id=batch_id,
                record_end=False,
                tenant=tenant,
                privacy=privacy,
                expires_at=float(record["expires_at"]),
                traceparent=record.get("traceparent"),
                endpoint=record["endpoint"],
            )
            runner.run()
            end = runner.outcome()
        self.batches.reach(batch_id, "finalizing", _now())
        self._publish_outputs(batch_id, output, errors)
        self.batches.reach(batch_id, end, _now())

    def _publish_outputs(self, batch_id: str, output: Any, errors: Any) -> None:
        record = self.batches.record(batch_id)
        for field, path, name in (
            ("output_file_id", output, f"{batch_id}_output.jsonl"),
            ("error_file_id", errors, f"{batch_id}_error.jsonl"),
        ):
            if field in record or not path.exists():
                continue
            if path.stat().st_size == 0:
                path.unlink()
                continue
            adopted = self.files.adopt(path, name, "batch_output", record.get("tenant"))
            self.batches.set(batch_id, **{field: adopted["id"]})

    def _fail(self, batch_id: str, message: str) -> None:
        self.batches.fail(batch_id, message, _now())


def _now() -> int:
    return int(time.time())


def batch_object(batch_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """A batch in OpenAI's shape."""

    def instant(name: str) -> int | None:
        value = record.get(name)
        return int(value) if value is not None else None

    done = int(record.get("done", 0))
    failed = int(record.get("failed", 0)) + int(record.get("invalid", 0))
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": record["endpoint"],
        "errors": json.loads(record["errors"]) if record.get("errors") else None,
        "input_file_id": record["input_file_id"],
        "completion_window": record["completion_window"],
        "status": record["status"],
        "output_file_id": record.get("output_file_id"),
        "error_file_id": record.get("error_file_id"),
        "created_at": instant("created_at"),
        "in_progress_at": instant("in_progress_at"),
        "expires_at": instant("expires_at"),
        "finalizing_at": instant("finalizing_at"),
        "completed_at": instant("completed_at"),
        "failed_at": instant("failed_at"),
        "expired_at": instant("expired_at"),
        "cancelling_at": instant("cancelling_at"),
        "cancelled_at": instant("cancelled_at"),
        "request_counts": {
            "total": int(record.get("total", 0)),
            "completed": done,
            "failed": failed,
        },
        "metadata": json.loads(record.get("metadata") or "{}") or None,
    }
