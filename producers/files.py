"""Files for HTTP batches, in OpenAI's shape: uploaded inputs and produced outputs.

Contents live on disk in ``settings.effective_files_dir`` (share it between gateways); each
file's metadata lives in Redis (``chatq:file:{id}``), so any gateway can describe any file.
Its record is written through ``chatq.producers.batch_state``, with the batches' own.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from chatq.producers.batch_state import FileRecords
from chatq.shared import idempotency
from chatq.shared.errors import FileNotFound, InvalidRequest, PayloadTooLarge, short
from redis import Redis

PURPOSES = ("batch", "batch_output")
COPY_CHUNK = 1024 * 1024


class FileStore:
    def __init__(self, redis: Redis, directory: Path, *, max_bytes: int, max_lines: int = 50_000):
        self.records = FileRecords(redis)
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_lines = max_lines
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, file_id: str, tenant: str | None = None) -> Path:
        self.get(file_id, tenant)
        return self._path(file_id)

    def _path(self, file_id: str) -> Path:
        return self.directory / f"{file_id}.jsonl"

    def upload(
        self,
        source: BinaryIO,
        filename: str,
        purpose: str,
        tenant: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Stores an uploaded file, refusing one larger than the limit before keeping it.
        With ``idempotency_key``, a retry of the same upload gets the first one's file."""
        if purpose != "batch":
            raise InvalidRequest(
                f"Invalid purpose {short(purpose)}: files uploaded here are for 'batch'.",
                param="purpose",
            )
        file_id = f"file-{uuid.uuid4().hex}"
        if idempotency_key is not None:
            file_id = idempotency.scoped_id("file", tenant, idempotency.check_key(idempotency_key))
        target = self.directory / f"{file_id}.{uuid.uuid4().hex}.part"
        size, lines, last = 0, 0, b"\n"
        content = hashlib.sha256()
        with target.open("wb") as out:
            while chunk := source.read(COPY_CHUNK):
                content.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
                problem = self._over_limit(size, lines)
                if problem is not None:
                    out.close()
                    target.unlink(missing_ok=True)
                    raise problem
                out.write(chunk)
        if last != b"\n" and (problem := self._over_limit(size, lines + 1)) is not None:
            target.unlink(missing_ok=True)
            raise problem
        if size == 0:
            target.unlink(missing_ok=True)
            raise InvalidRequest("The file is empty: send one JSON request per line.", param="file")
        fingerprint = None
        if idempotency_key is not None:
            fingerprint = idempotency.request_hash([content.hexdigest(), filename, purpose])
        return self._keep(target, file_id, filename, purpose, size, tenant, fingerprint)

    def _keep(
        self,
        upload: Path,
        file_id: str,
        filename: str,
        purpose: str,
        size: int,
        tenant: str | None,
        fingerprint: str | None,
    ) -> dict[str, Any]:
        """The uploaded file, registered; with an idempotency key's ``fingerprint``, the
        first upload's file if this one is its retry."""
        if fingerprint is None:
            upload.rename(self._path(file_id))
            return self._register(file_id, filename, purpose, size, tenant)
        record = self._record(filename, purpose, size, tenant)
        record["request_hash"] = fingerprint
        created, first = self.records.create_once(file_id, record, record["created_at"])
        if created:
            upload.rename(self._path(file_id))
            return file_object(file_id, record)
        upload.unlink(missing_ok=True)
        idempotency.check_same(first, fingerprint)
        return self.get(file_id, tenant)

    def _over_limit(self, size: int, lines: int) -> InvalidRequest | None:
        if size > self.max_bytes:
            return PayloadTooLarge(
                f"The file is larger than the {self.max_bytes:,} bytes allowed "
                "(CHATQ_MAX_FILE_BYTES).",
                param="file",
            )
        if lines > self.max_lines:
            return InvalidRequest(
                f"A batch file may hold at most {self.max_lines:,} requests "
                "(CHATQ_MAX_BATCH_LINES); send the rest in another file.",
                param="file",
            )
        return None

    def adopt(
        self, source: Path, filename: str, purpose: str, tenant: str | None = None
    ) -> dict[str, Any]:
        """Registers a file chatq wrote (a batch's output), moving it into the store."""
        file_id = f"file-{uuid.uuid4().hex}"
        shutil.move(source, self._path(file_id))
        size = self._path(file_id).stat().st_size
        return self._register(file_id, filename, purpose, size, tenant)

    def _register(
        self, file_id: str, filename: str, purpose: str, size: int, tenant: str | None
    ) -> dict[str, Any]:
        record = self._record(filename, purpose, size, tenant)
        self.records.create(file_id, record, record["created_at"])
        return file_object(file_id, record)

    @staticmethod
    def _record(filename: str, purpose: str, size: int, tenant: str | None) -> dict[str, Any]:
        record: dict[str, Any] = {
            "filename": filename,
            "bytes": size,
            "purpose": purpose,
            "created_at": int(time.time()),
        }
        if tenant is not None:
            record["tenant"] = tenant
        return record

    def get(self, file_id: str, tenant: str | None = None) -> dict[str, Any]:
        """The file, if it exists and belongs to ``tenant``."""
        record = self.records.record(file_id)
        if not record or record.get("tenant") != tenant:
            raise FileNotFound(f"No file with id {short(file_id)}.", param="file_id")
        return file_object(file_id, record)

    def list(
        self, *, limit: int = 100, purpose: str | None = None, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        found = []
        for file_id in self.records.ids():
            record = self.records.record(file_id)
            mine = record and record.get("tenant") == tenant
            if mine and (purpose is None or record.get("purpose") == purpose):
                found.append(file_object(file_id, record))
                if len(found) >= limit:
                    break
        return found

    def delete(self, file_id: str, tenant: str | None = None) -> dict[str, Any]:
        self.get(file_id, tenant)
        self.records.delete(file_id)
        self._path(file_id).unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}


def file_object(file_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """A file in OpenAI's shape."""
    return {
        "id": file_id,
        "object": "file",
        "bytes": int(record["bytes"]),
        "created_at": int(record["created_at"]),
        "filename": record["filename"],
        "purpose": record["purpose"],
        "status": "processed",
        "status_details": None,
    }
