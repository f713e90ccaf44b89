"""Loads the Redis Lua scripts that live as ``.lua`` files beside the code using them."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def lua(package: str, name: str) -> str:
    """The source of ``name`` (e.g. ``"finish_job.lua"``) shipped in ``package``."""
    return resources.files(package).joinpath(name).read_text()
