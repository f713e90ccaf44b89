"""An OpenAI-compatible chat API simulator: the embedded default provider, and the test target."""

from __future__ import annotations

from simulator.app import create_app
from simulator.config import SimConfig
from simulator.server import serve

__all__ = ["SimConfig", "create_app", "serve"]
