"""The ``chatq`` command's entry point: the CLI, or what to install where only the SDK is."""

from __future__ import annotations

import sys


def main() -> None:
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
