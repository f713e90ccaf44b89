"""The headers chatq reads from a request, each checked where it enters: a bad one is a 400
naming the header, echoing at most a short prefix of its value.

Routes declare them with the ``...Header`` types, so the OpenAPI document states each header
and what it accepts (an empty value counts as not sent); the ``check_...`` functions do the
checking, the same for a declared header and one read from ``request.headers``."""

from __future__ import annotations

import re
from typing import Annotated

from chatq.shared import idempotency
from chatq.shared.errors import InvalidRequest, short
from chatq.shared.jobs import SAFE_ID
from fastapi import Header
from starlette.datastructures import Headers

SESSION_HEADER = "X-Session-Id"
IDEMPOTENCY_HEADER = idempotency.HEADER
TRACEPARENT_HEADER = "traceparent"
MAX_ID_CHARS = 200
_SAFE_ID = re.compile(SAFE_ID)

SESSION_ID_SCHEMA = {"type": "string", "maxLength": MAX_ID_CHARS, "pattern": r"^[A-Za-z0-9_.@-]*$"}
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "maxLength": idempotency.MAX_KEY_CHARS,
    "pattern": r"^[ -~]*$",
}
SessionIdHeader = Annotated[
    str | None,
    Header(
        alias=SESSION_HEADER,
        description="Keep the conversation server-side (as the body's `session_id`).",
        json_schema_extra={k: v for k, v in SESSION_ID_SCHEMA.items() if k != "type"},
    ),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description="A retry with this key and the same body gets what the first request made.",
        json_schema_extra={k: v for k, v in IDEMPOTENCY_KEY_SCHEMA.items() if k != "type"},
    ),
]
TraceparentHeader = Annotated[
    str | None,
    Header(
        alias=TRACEPARENT_HEADER,
        description="W3C trace context the job's trace joins; a malformed one is ignored.",
    ),
]


def session_id(headers: Headers) -> str | None:
    """The ``X-Session-Id`` header of a request, checked (``check_session_id``)."""
    return check_session_id(headers.get(SESSION_HEADER))


def check_session_id(value: str | None) -> str | None:
    """An ``X-Session-Id``, if sent: 1-200 of letters, digits and ``_.@-``."""
    if not value:
        return None
    if len(value) > MAX_ID_CHARS or not _SAFE_ID.match(value):
        raise InvalidRequest(
            f"{SESSION_HEADER} must be 1 to {MAX_ID_CHARS} letters, digits or _.@- ; got "
            f"{short(value)} ({len(value)} characters).",
            param=SESSION_HEADER,
        )
    return value


def idempotency_key(headers: Headers) -> str | None:
    """The ``Idempotency-Key`` header of a request, checked (``check_idempotency_key``)."""
    return check_idempotency_key(headers.get(IDEMPOTENCY_HEADER))


def check_idempotency_key(value: str | None) -> str | None:
    """An ``Idempotency-Key``, if sent: 1 to 255 printable ASCII characters."""
    return idempotency.check_key(value) if value else None
