"""``python -m simulator``: run the provider simulator (``chatq sim`` calls the same main)."""

from __future__ import annotations

from chatq.simulator.cli import config_from_args, main

__all__ = ["config_from_args", "main"]

if __name__ == "__main__":
    main()
