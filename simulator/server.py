"""Serving the simulator with uvicorn; deliberate stream cuts are kept out of the error log."""

from __future__ import annotations

import logging

import uvicorn

from simulator.app import StreamCut, create_app
from simulator.config import SimConfig


class _HideInjectedCuts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamCut))


def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 8400) -> None:
    logging.getLogger("uvicorn.error").addFilter(_HideInjectedCuts())
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        timeout_keep_alive=30,
    )
