"""The headers chatq reads from a request, each checked where it enters: a bad one is a 400
naming the header, echoing at most a short prefix of its value."""

from __future__ import annotations

import re

from chatq.shared.errors import InvalidRequest
from chatq.shared.jobs import SAFE_ID
from starlette.datastructures import Headers

SESSION_HEADER = "X-Session-Id"
MAX_ID_CHARS = 200
_SAFE_ID = re.compile(SAFE_ID)


def short(value: str, limit: int = 16) -> str:
    """A value as an error message may show it: its first characters only."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def session_id(headers: Headers) -> str | None:
    """The ``X-Session-Id`` header, if sent: 1-200 of letters, digits and ``_.@-``."""
    value = headers.get(SESSION_HEADER)
    if not value:
        return None
    if len(value) > MAX_ID_CHARS or not _SAFE_ID.match(value):
        raise InvalidRequest(
            f"{SESSION_HEADER} must be 1 to {MAX_ID_CHARS} letters, digits or _.@- ; got "
            f"{short(value)} ({len(value)} characters).",
            param=SESSION_HEADER,
        )
    return value
