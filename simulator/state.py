"""What a running simulator remembers: counters, the request log, limit windows, fault draws."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

from chatq.simulator.config import SimConfig
from chatq.simulator.faults import FaultInjector
from chatq.simulator.limits import RateLimiter


@dataclass
class Stats:
    """Counters served by GET /sim/stats."""

    requests: int = 0  # every chat completion request received, valid or not
    invalid: int = 0
    rate_limited: int = 0
    faults: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    completed: int = 0  # answers sent in full, plain or streamed
    streamed: int = 0  # streams started (a cut one included)
    active: int = 0  # answers being generated now (a real server's busy slots)
    abandoned: int = 0  # streams stopped before their end (client gone, or cut)
    embedded: int = 0  # inputs answered by /v1/embeddings
    prompt_tokens: int = 0  # of completed answers
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Simulator:
    """The simulator's mutable state, reset as a whole by :meth:`reset`."""

    def __init__(self, config: SimConfig, clock: Callable[[], float]):
        self.config = config
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        config = self.config
        self.limiter = RateLimiter(config.rpm, config.tpm, config.quantum_s)
        self.faults = FaultInjector(config.fail_rate, config.faults, random.Random(config.seed))
        self.stats = Stats(faults_by_kind=dict.fromkeys(config.faults, 0))
        self.log: deque[dict[str, Any]] = deque(maxlen=config.log_size)

    def record(
        self,
        body: Any,
        job_id: str | None,
        now: float,
        key_id: str | None = None,
        traceparent: str | None = None,
    ) -> dict[str, Any]:
        """Counts a request and logs it (outcome "ok" until told otherwise), with the trace it
        came in (W3C ``traceparent``). A key is logged only as a one-way ``key_id``."""
        self.stats.requests += 1
        entry = {"t": now, "body": body, "job_id": job_id, "outcome": "ok", "key_id": key_id}
        if traceparent is not None:
            entry["traceparent"] = traceparent
        self.log.append(entry)
        return entry

    def invalid(self, entry: dict[str, Any]) -> None:
        entry["outcome"] = "invalid"
        self.stats.invalid += 1

    def rate_limited(self, entry: dict[str, Any], retry_after_s: float) -> None:
        entry["outcome"] = "rate_limited"
        entry["retry_after"] = retry_after_s
        self.stats.rate_limited += 1

    def fault(self, entry: dict[str, Any], kind: str) -> None:
        entry["outcome"] = f"fault:{kind}"
        self.stats.faults += 1
        self.stats.faults_by_kind[kind] = self.stats.faults_by_kind.get(kind, 0) + 1

    def completed(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.stats.completed += 1
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` log entries (all if None), oldest first."""
        if limit is None or limit >= len(self.log):
            return list(self.log)
        return list(islice(self.log, len(self.log) - limit, None))
