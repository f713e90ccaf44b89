"""CPU time spent by processes and by a Redis server, read from the processes themselves
(``/proc`` and Redis's ``INFO``), so that benchmark figures per request do not depend on how
fast the load generator is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime


@dataclass(frozen=True)
class RedisUsage:
    """What a Redis server has done so far: CPU seconds, and commands by name."""

    cpu_s: float
    commands: dict[str, int]

    @classmethod
    def of(cls, redis: Redis) -> RedisUsage:
        cpu = redis.info("cpu")
        stats = redis.info("commandstats")
        commands = {
            name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()
        }
        return cls(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), commands)

    def since(self, earlier: RedisUsage) -> RedisUsage:
        names = self.commands.keys() | earlier.commands.keys()
        commands = {n: self.commands.get(n, 0) - earlier.commands.get(n, 0) for n in names}
        return RedisUsage(self.cpu_s - earlier.cpu_s, {n: c for n, c in commands.items() if c})
