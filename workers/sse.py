"""A small incremental parser for Server-Sent Events, as OpenAI-compatible APIs stream them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def iter_sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """The ``data`` payload of each event in a byte stream cut at arbitrary places.

    Multi-line data fields are joined with newlines; comments and other fields are skipped.
    """
    buffer = b""
    data_lines: list[str] = []
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8")
            if not line:
                if data_lines:
                    yield "\n".join(data_lines)
                    data_lines = []
            elif line.startswith("data:"):
                data_lines.append(line[5:].removeprefix(" "))
    tail = buffer.rstrip(b"\r").decode("utf-8")
    if tail.startswith("data:"):
        data_lines.append(tail[5:].removeprefix(" "))
    if data_lines:
        yield "\n".join(data_lines)
