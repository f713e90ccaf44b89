"""A batch's state in Redis, with one owner, as a job's has: pure builders of every command on
a batch's keys (its record hash, the index of batches, its driver's lock) in
``BatchCommands``, and on its files' records (inputs uploaded, outputs produced) in
``FileCommands``, sent by the thin shells ``BatchStore`` and ``FileRecords``. The gateway's
batch service and file store, the batch runner and the ``chatq batch`` commands all write
through here, and nothing else names these keys.

The record's fields are OpenAI's batch object's (``status``, ``<status>_at`` times, the file
ids, ``errors``), the request counts (``done``, ``failed``, ``invalid``, ``skipped``,
``total``), the runner's ``input``, and ``cancel`` ("1": asked to stop). A file's record
holds ``filename``, ``bytes``, ``purpose``, ``created_at`` and its ``tenant``, if any; both
kinds hold the ``request_hash`` of an idempotency key's first request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chatq.shared import keys
from chatq.shared.job_state import Command, pipelined
from chatq.shared.scripts import ScriptCall, lua
from redis import Redis

TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})
COUNTS = ("done", "failed", "invalid", "skipped", "total")


def _create(
    key: str, index: str, item_id: str, record: Mapping[str, Any], created_at: int
) -> list[Command]:
    """A record written and indexed by its creation time."""
    return [
        Command("hset", (key,), {"mapping": dict(record)}),
        Command("zadd", (index, {item_id: created_at})),
    ]


def _create_once(
    key: str, index: str, item_id: str, record: Mapping[str, Any], created_at: int
) -> ScriptCall:
    """``_create``, unless a record with its id exists (``create_once.lua``)."""
    fields = [x for pair in record.items() for x in pair]
    source = lua("chatq.producers", "create_once.lua")
    return ScriptCall(source, [key, index], [created_at, item_id, *fields])


def created(reply: Any) -> tuple[bool, str | None]:
    """A ``create_once`` reply: whether the record was created; if not, the existing one's
    request hash (None if it was created without an idempotency key)."""
    return bool(reply[0]), (reply[1] or None) if len(reply) > 1 else None


class BatchCommands:
    """The commands of a batch's life; each is built, not sent."""

    @staticmethod
    def create(batch_id: str, record: Mapping[str, Any], created_at: int) -> list[Command]:
        return _create(keys.batch_key(batch_id), keys.BATCHES, batch_id, record, created_at)

    @staticmethod
    def create_once(batch_id: str, record: Mapping[str, Any], created_at: int) -> ScriptCall:
        """``create``, unless the batch exists: replies {1}, or {0, its request_hash}."""
        return _create_once(keys.batch_key(batch_id), keys.BATCHES, batch_id, record, created_at)

    @staticmethod
    def record(batch_id: str) -> Command:
        return Command("hgetall", (keys.batch_key(batch_id),))

    @staticmethod
    def field(batch_id: str, name: str) -> Command:
        return Command("hget", (keys.batch_key(batch_id), name))

    @staticmethod
    def exists(batch_id: str) -> Command:
        return Command("exists", (keys.batch_key(batch_id),))

    @staticmethod
    def newest_first() -> Command:
        return Command("zrevrange", (keys.BATCHES, 0, -1))

    @staticmethod
    def oldest_first() -> Command:
        return Command("zrange", (keys.BATCHES, 0, -1))

    @staticmethod
    def is_driven(batch_id: str) -> Command:
        return Command("exists", (keys.batch_driver_key(batch_id),))

    @staticmethod
    def ask_to_stop(batch_id: str) -> Command:
        """The flag the batch's runner checks before each line (``chatq batch cancel``)."""
        return Command("hset", (keys.batch_key(batch_id), "cancel", "1"))

    @staticmethod
    def cancel(batch_id: str, at: int) -> Command:
        """Asks the batch to stop and shows it as ``cancelling`` until its runner has."""
        mapping = {"cancel": "1", "status": "cancelling", "cancelling_at": at}
        return Command("hset", (keys.batch_key(batch_id),), {"mapping": mapping})

    @staticmethod
    def start(batch_id: str, input_path: str, total: int) -> ScriptCall:
        """Marks the batch running, unless a cancel came first (``batch_start.lua``)."""
        source = lua("chatq.producers", "batch_start.lua")
        return ScriptCall(source, [keys.batch_key(batch_id)], [input_path, total])

    @staticmethod
    def progress(batch_id: str, counts: Mapping[str, int]) -> Command:
        mapping = {name: counts[name] for name in COUNTS}
        return Command("hset", (keys.batch_key(batch_id),), {"mapping": mapping})

    @staticmethod
    def set(batch_id: str, **fields: Any) -> Command:
        """Fields of the record as they are (an output file's id, a time)."""
        return Command("hset", (keys.batch_key(batch_id),), {"mapping": fields})

    @staticmethod
    def reach(batch_id: str, status: str, at: int) -> Command:
        """The batch in ``status`` from ``at`` (its ``<status>_at`` field)."""
        return BatchCommands.set(batch_id, status=status, **{f"{status}_at": at})

    @staticmethod
    def fail(batch_id: str, message: str, at: int) -> Command:
        errors = {"object": "list", "data": [{"code": "batch_failed", "message": message}]}
        return BatchCommands.set(batch_id, status="failed", failed_at=at, errors=json.dumps(errors))


class FileCommands:
    """The commands on a file's record (a batch's input or output); each is built, not sent.
    The file's content is on disk (``chatq.producers.files``), not in Redis."""

    @staticmethod
    def create(file_id: str, record: Mapping[str, Any], created_at: int) -> list[Command]:
        return _create(keys.file_key(file_id), keys.FILES, file_id, record, created_at)

    @staticmethod
    def create_once(file_id: str, record: Mapping[str, Any], created_at: int) -> ScriptCall:
        """``create``, unless the file exists: replies {1}, or {0, its request_hash}."""
        return _create_once(keys.file_key(file_id), keys.FILES, file_id, record, created_at)

    @staticmethod
    def record(file_id: str) -> Command:
        return Command("hgetall", (keys.file_key(file_id),))

    @staticmethod
    def newest_first() -> Command:
        return Command("zrevrange", (keys.FILES, 0, -1))

    @staticmethod
    def delete(file_id: str) -> list[Command]:
        return [
            Command("delete", (keys.file_key(file_id),)),
            Command("zrem", (keys.FILES, file_id)),
        ]


class BatchStore:
    """Sends ``BatchCommands`` on a synchronous client (``decode_responses``)."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._scripts: dict[str, Any] = {}

    def _run(self, command: Command | ScriptCall) -> Any:
        return command.run(self.redis, self._scripts)

    def create(self, batch_id: str, record: Mapping[str, Any], created_at: int) -> None:
        pipelined(self.redis, BatchCommands.create(batch_id, record, created_at))

    def create_once(
        self, batch_id: str, record: Mapping[str, Any], created_at: int
    ) -> tuple[bool, str | None]:
        """Whether the batch was created; if not, the existing one's request hash."""
        return created(self._run(BatchCommands.create_once(batch_id, record, created_at)))

    def record(self, batch_id: str) -> dict[str, str]:
        return self._run(BatchCommands.record(batch_id))

    def field(self, batch_id: str, name: str) -> str | None:
        return self._run(BatchCommands.field(batch_id, name))

    def exists(self, batch_id: str) -> bool:
        return bool(self._run(BatchCommands.exists(batch_id)))

    def ids(self, *, newest_first: bool = False) -> list[str]:
        order = BatchCommands.newest_first() if newest_first else BatchCommands.oldest_first()
        return self._run(order)

    def is_driven(self, batch_id: str) -> bool:
        return bool(self._run(BatchCommands.is_driven(batch_id)))

    def driver_lock(self, batch_id: str, lease_s: float) -> Any:
        """The lock its one driver holds (renewed while it runs the batch)."""
        return self.redis.lock(keys.batch_driver_key(batch_id), timeout=lease_s, thread_local=False)

    def ask_to_stop(self, batch_id: str) -> None:
        self._run(BatchCommands.ask_to_stop(batch_id))

    def stop_asked(self, batch_id: str) -> bool:
        return self.field(batch_id, "cancel") == "1"

    def cancel(self, batch_id: str, at: int) -> None:
        self._run(BatchCommands.cancel(batch_id, at))

    def start(self, batch_id: str, input_path: str, total: int) -> str:
        return self._run(BatchCommands.start(batch_id, input_path, total))

    def save_progress(self, batch_id: str, counts: Mapping[str, int]) -> None:
        self._run(BatchCommands.progress(batch_id, counts))

    def set(self, batch_id: str, **fields: Any) -> None:
        self._run(BatchCommands.set(batch_id, **fields))

    def reach(self, batch_id: str, status: str, at: int) -> None:
        self._run(BatchCommands.reach(batch_id, status, at))

    def fail(self, batch_id: str, message: str, at: int) -> None:
        self._run(BatchCommands.fail(batch_id, message, at))


class FileRecords:
    """Sends ``FileCommands`` on a synchronous client (``decode_responses``)."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._scripts: dict[str, Any] = {}

    def _run(self, command: Command | ScriptCall) -> Any:
        return command.run(self.redis, self._scripts)

    def create(self, file_id: str, record: Mapping[str, Any], created_at: int) -> None:
        pipelined(self.redis, FileCommands.create(file_id, record, created_at))

    def create_once(
        self, file_id: str, record: Mapping[str, Any], created_at: int
    ) -> tuple[bool, str | None]:
        """Whether the file was created; if not, the existing one's request hash."""
        return created(self._run(FileCommands.create_once(file_id, record, created_at)))

    def record(self, file_id: str) -> dict[str, str]:
        return self._run(FileCommands.record(file_id))

    def ids(self) -> list[str]:
        """Every file's id, newest first."""
        return self._run(FileCommands.newest_first())

    def delete(self, file_id: str) -> None:
        pipelined(self.redis, FileCommands.delete(file_id))
