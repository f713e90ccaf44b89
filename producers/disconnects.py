"""What becomes of a chat whose client leaves before its answer, mid-stream or while waiting
for it whole: its job is cancelled, or finished for a retry to collect, as
``Settings.stream_disconnect`` says."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal, TypeVar

from starlette.types import Receive

log = logging.getLogger("chatq.gateway")

StreamDisconnect = Literal["auto", "finish", "cancel"]
T = TypeVar("T")

# Cancels running in tasks of their own (their starter may itself be cancelled next): kept
# until they end.
_cancelling: set[asyncio.Task[object]] = set()


def cancels_on_disconnect(policy: StreamDisconnect, *, idempotency_key: str | None) -> bool:
    """Whether a stream's job is cancelled when its client leaves. ``auto`` finishes the jobs
    a caller may retry (it sent an Idempotency-Key) and cancels the rest."""
    if policy == "auto":
        return idempotency_key is None
    return policy == "cancel"


async def cancelled_if_left(
    lines: AsyncIterator[str], cancel: Callable[[], Awaitable[object]]
) -> AsyncIterator[str]:
    """``lines`` as they come; if the client leaves before the last, ``cancel()`` runs, in
    a task of its own, as the stream's task is being cancelled."""
    ended = False
    try:
        async for line in lines:
            yield line
        ended = True
    finally:
        if not ended:
            _start_cancel(cancel)


async def awaited_unless_left(
    waiting: Awaitable[T], receive: Receive, cancel: Callable[[], Awaitable[object]]
) -> T:
    """What ``waiting`` gives; if the client leaves first, ``cancel()`` runs (ending the job
    ends the wait too). The request's body must have been read: ``receive`` then gives
    nothing but the client's leaving."""
    watcher = asyncio.get_running_loop().create_task(_cancel_when_left(receive, cancel))
    try:
        return await waiting
    finally:
        watcher.cancel()  # before the answer is sent: its end is no leaving


async def _cancel_when_left(receive: Receive, cancel: Callable[[], Awaitable[object]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    _start_cancel(cancel)  # its own task: the watcher is cancelled once the job's end comes


def _start_cancel(cancel: Callable[[], Awaitable[object]]) -> None:
    """Runs ``cancel()`` in a task of its own, kept until it ends."""
    task = asyncio.get_running_loop().create_task(_cancel(cancel))
    _cancelling.add(task)
    task.add_done_callback(_cancelling.discard)


async def _cancel(cancel: Callable[[], Awaitable[object]]) -> None:
    try:
        await cancel()
    except Exception:
        log.exception("cancelling the job of a stream whose client left failed")
