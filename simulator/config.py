"""The simulator's knobs: latency, rate limits, injected faults, replies, context window and
the request log."""

from __future__ import annotations

from dataclasses import dataclass

FAULT_KINDS = ("500", "503", "timeout", "cut")
DEFAULT_MODELS = ("sim-mini", "sim-large")


@dataclass(frozen=True)
class SimConfig:
    """How the simulated provider behaves; every field has a flag of the same name in the CLI."""

    ttft_ms: float = 0.0  # wait before the first token (or before a plain answer)
    tokens_per_s: float = 0.0  # 0: no wait between tokens at all
    rpm: int | None = None  # requests per minute, None for no limit
    tpm: int | None = None  # tokens per minute (prompt + max_tokens), None for no limit
    quantum_s: float = 1.0  # limits also hold pro rata over any window this long; 0: minute only
    fail_rate: float = 0.0  # probability that a request meets an injected fault
    faults: tuple[str, ...] = ("500", "503")  # kinds drawn uniformly when a fault fires
    hang_s: float = 60.0  # how long a "timeout" fault hangs before answering 504
    seed: int = 0  # seeds the fault draws
    echo: bool = False  # text answers repeat the last user message instead of generated words
    models: tuple[str, ...] | None = None  # None accepts any model name
    log_size: int = 1000  # request bodies kept for GET /sim/requests
    max_reply_tokens: int = 64  # longest natural reply
    api_keys: tuple[str, ...] | None = None  # None accepts any key (or none); else 401
    context_window: int = 128_000  # prompt + max_tokens above this: context_length_exceeded

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; choose from {', '.join(FAULT_KINDS)}")
        if not 0 <= self.fail_rate <= 1:
            raise ValueError("fail_rate must be between 0 and 1")
        if self.fail_rate > 0 and not self.faults:
            raise ValueError("fail_rate > 0 needs at least one fault kind")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no limit)")
        for name in ("ttft_ms", "tokens_per_s", "quantum_s", "hang_s", "log_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("max_reply_tokens", "context_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.models is not None and not self.models:
            raise ValueError("models must name at least one model (or be None for any)")

    @property
    def model_names(self) -> tuple[str, ...]:
        """The names GET /v1/models lists."""
        return self.models or DEFAULT_MODELS
