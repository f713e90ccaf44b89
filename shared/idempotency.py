"""Idempotency keys (the IETF httpapi draft's ``Idempotency-Key``): a submission retried with
its key, by the same tenant, with the same body, gets what the first one made, not a second
job, batch or file.

What the key makes has an id derived from the tenant and the key (``scoped_id``), so the
create that already guards ids (a job id submitted twice runs once) does the rest; the
request's hash, kept in its record, tells a retry from a reuse of the key for another
request, which is refused (422). The window is the record's life: 24 h after a job ends
(``CHATQ_RESULT_TTL_S``)."""

from __future__ import annotations

import hashlib

import orjson
from chatq.shared.errors import IdempotencyKeyReused, InvalidRequest, short

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255


def check_key(key: str, name: str = HEADER) -> str:
    """The key, if it is 1 to 255 printable ASCII characters; else ``InvalidRequest``."""
    if not 0 < len(key) <= MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise InvalidRequest(
            f"{name} must be 1 to {MAX_KEY_CHARS} printable ASCII characters; got "
            f"{short(key)} ({len(key)} characters).",
            param=name,
        )
    return key


def scoped_id(prefix: str, tenant: str | None, key: str) -> str:
    """The id of what ``key`` makes for ``tenant``: the same key from two tenants, two ids."""
    digest = hashlib.sha256(f"{tenant or ''}\0{key}".encode()).hexdigest()[:32]
    return f"{prefix}_idem_{digest}"


def request_hash(body: object) -> str:
    """A hash of a request's JSON body (keys sorted), to tell a retry from another request."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_same(stored: str | None, submitted: str) -> None:
    """Raises ``IdempotencyKeyReused`` if the key's first request differs from this one."""
    if stored is not None and stored != submitted:
        raise IdempotencyKeyReused(
            f"This {HEADER} was used with a different request within the last 24 h; a retry "
            "must send the same body. Use a new key for a new request.",
            param=HEADER,
        )
