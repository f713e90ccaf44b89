"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its
next request as soon as the last is answered, for a fixed time. Plain asyncio streams, so
the benchmark needs no load tool installed; what it measures is the servers' own CPU per
request (``chatq.process_cpu``), which does not depend on how fast the generator is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # non-2xx answers and broken connections
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def run_load(
    host: str,
    port: int,
    path: str,
    body: Callable[[int], bytes],
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POSTs ``body(n)`` (the n-th request's JSON) over ``connections`` connections."""
    return asyncio.run(_run(host, port, path, body, connections, seconds, headers or {}))


async def _run(
    host: str,
    port: int,
    path: str,
    body: Callable[[int], bytes],
    connections: int,
    seconds: float,
    headers: dict[str, str],
) -> LoadResult:
    result = LoadResult()
    counter = iter(range(1 << 62))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    stop_at = time.monotonic() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < stop_at:
                payload = body(next(counter))
                request = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"{head}Content-Length: {len(payload)}\r\n\r\n"
                ).encode() + payload
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status >= 300:
                    result.errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(connections)))
    result.seconds = time.monotonic() - started
    return result


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Reads one response with a Content-Length body; its status."""
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status
