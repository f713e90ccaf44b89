"""Serving the simulator with uvicorn; deliberate connection cuts stay out of the error log."""

from __future__ import annotations

import importlib.util
import logging

import uvicorn
from chatq.simulator.app import StreamCut, create_app
from chatq.simulator.config import SimConfig


class HideInjectedCuts(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" records for :class:`StreamCut`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamCut))


def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 8400) -> None:
    """Runs the simulator until interrupted."""
    logging.getLogger("uvicorn.error").addFilter(HideInjectedCuts())
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        loop="auto",
        http="httptools" if importlib.util.find_spec("httptools") else "auto",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )
