"""Loads the Redis Lua scripts that live as ``.lua`` files beside the code using them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@cache
def lua(package: str, name: str) -> str:
    """The source of ``name`` (e.g. ``"finish_job.lua"``) shipped in ``package``."""
    return resources.files(package).joinpath(name).read_text()


@dataclass(frozen=True)
class ScriptCall:
    """One call of a script: its source, keys and arguments."""

    source: str
    keys: list[Any]
    args: list[Any]

    def run(self, redis: Any, scripts: dict[str, Any]) -> Any:
        """Sends the call on a sync or asyncio client (then awaitable); ``scripts`` caches the
        client's registered scripts by source."""
        script = scripts.get(self.source)
        if script is None:
            script = scripts.setdefault(self.source, redis.register_script(self.source))
        return script(keys=self.keys, args=self.args)


def chain(calls: Sequence[ScriptCall]) -> tuple[str, list[Any], list[Any]]:
    """One script that runs several in turn and replies with the list of their replies, with
    its keys and arguments: one atomic round trip where a pipeline of scripts takes two
    (redis-py sends SCRIPT EXISTS before each such pipeline)."""
    source = _chained(tuple((call.source, len(call.keys), len(call.args)) for call in calls))
    all_keys = [k for call in calls for k in call.keys]
    all_args = [a for call in calls for a in call.args]
    return source, all_keys, all_args


@cache
def _chained(shapes: tuple[tuple[str, int, int], ...]) -> str:
    """Each source becomes a local function whose ``KEYS`` and ``ARGV`` are its own slices."""
    parts, replies = [], []
    key_at, arg_at = 0, 0
    for n, (source, key_count, arg_count) in enumerate(shapes):
        parts.append(f"local function part{n}(KEYS, ARGV)\n{source}\nend")
        slice_keys = ", ".join(f"KEYS[{key_at + i}]" for i in range(1, key_count + 1))
        slice_args = ", ".join(f"ARGV[{arg_at + i}]" for i in range(1, arg_count + 1))
        replies.append(f"part{n}({{{slice_keys}}}, {{{slice_args}}})")
        key_at += key_count
        arg_at += arg_count
    return "\n".join([*parts, f"return {{{', '.join(replies)}}}"])
