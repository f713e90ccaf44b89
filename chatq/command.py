"""The ``chatq`` command's entry point: the CLI, or what to install where only the SDK is."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main() -> None:
    if _gevent_worker(sys.argv[1:]):
        _patch_for_gevent()
    try:
        from chatq.cli import main as run
    except ModuleNotFoundError as exc:
        if (exc.name or "chatq").partition(".")[0] == "chatq":
            raise
        sys.exit(
            f"The chatq command needs the server extra ({exc.name} is missing): "
            "pip install 'chatq[server]'. The SDK alone needs none of it."
        )
    run()


def _gevent_worker(argv: Sequence[str]) -> bool:
    """Whether this is ``chatq worker`` on the gevent pool (``--pool``, else
    ``CHATQ_WORKER_POOL`` from the environment or ``.env``)."""
    if not argv or argv[0] != "worker":
        return False
    for index, arg in enumerate(argv):
        if arg.startswith("--pool="):
            return arg.partition("=")[2] == "gevent"
        if arg == "--pool" and index + 1 < len(argv):
            return argv[index + 1] == "gevent"
    pool = os.environ.get("CHATQ_WORKER_POOL")
    if pool is None and Path(".env").is_file():
        for line in Path(".env").read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "CHATQ_WORKER_POOL":
                pool = value.strip().strip("'\"")
    return (pool or "").lower() == "gevent"


def _patch_for_gevent() -> None:
    """gevent's patches before anything else is imported, as ``celery worker -P gevent``
    makes them: kombu keeps the poller it finds at import, and an unpatched one blocks
    every greenlet (the worker's control commands went unanswered)."""
    from gevent import monkey

    monkey.patch_all()
