"""The simulator's knobs: latency model, rate limits, injected faults."""

from __future__ import annotations

from dataclasses import dataclass

FAULT_KINDS = ("500", "503", "timeout", "cut")
DEFAULT_MODELS = ("sim-mini", "sim-large")


@dataclass(frozen=True)
class SimConfig:
    ttft_ms: float = 0.0  # wait before the first token (or before a plain answer)
    tokens_per_s: float = 0.0  # streaming speed; 0 streams with no delay at all
    rpm: int | None = None  # requests per minute, None for no limit
    tpm: int | None = None  # tokens per minute (prompt + max_tokens), None for no limit
    burst_s: float = 1.0  # how many seconds' worth of the limits may be spent at once
    fail_rate: float = 0.0  # probability that a request meets an injected fault
    faults: tuple[str, ...] = ("500", "503")
    hang_s: float = 60.0  # how long a "timeout" fault hangs before answering 504
    seed: int = 0
    echo: bool = False  # reply with the last user message instead of generated words
    models: tuple[str, ...] | None = None  # None accepts any model name
    log_size: int = 1000  # request bodies kept for GET /sim/requests
    max_reply_tokens: int = 64  # longest natural reply

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {FAULT_KINDS}")
        if not 0 <= self.fail_rate <= 1:
            raise ValueError("fail_rate must be between 0 and 1")
