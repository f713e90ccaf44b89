"""An OpenAI-compatible chat API simulator: the embedded default provider, and the test target."""

from __future__ import annotations

from chatq.simulator.app import create_app
from chatq.simulator.config import SimConfig
from chatq.simulator.server import serve

__all__ = ["SimConfig", "create_app", "serve"]
