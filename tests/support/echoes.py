"""Whether an error message echoes more of a value the caller sent than a short prefix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Of one sent value, what an error message may show: chatq's messages show 16 characters
# (``chatq.shared.errors.short``); 40 leaves room for the quotes and a value's own text.
MAX_ECHO_CHARS = 40


def echoes(value: str, message: str, limit: int = MAX_ECHO_CHARS) -> bool:
    """True if ``message`` holds more than ``limit`` consecutive characters of ``value``."""
    if len(value) <= limit or len(message) <= limit:
        return False
    width = limit + 1
    shown = {message[i : i + width] for i in range(len(message) - limit)}
    return any(value[i : i + width] in shown for i in range(len(value) - limit))


def strings_in(data: Any) -> Iterator[str]:
    """Every string in ``data`` (a JSON value, headers, parameters): values and keys."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, bytes):
        yield data.decode("latin-1")
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(data, list | tuple):
        for item in data:
            yield from strings_in(item)
