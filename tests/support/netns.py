"""Moving the calling thread between network namespaces (``setns``), as ``ip netns exec`` moves
a process: sockets and devices opened meanwhile stay in the namespace they were opened in."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

from chatq.shared.errors import ChatqError

CLONE_NEWNET = 0x40000000


class NamespaceError(ChatqError):
    """A network namespace could not be entered."""


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """This thread in network namespace ``name`` (one of ``ip netns``) until the block ends."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(original)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise NamespaceError(f"setns: {os.strerror(ctypes.get_errno())}")
