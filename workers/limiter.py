"""Cluster-wide limits per deployment, in Redis: requests/min, tokens/min, calls in flight.

Every worker process on every host shares the same GCRA state (``limiter_acquire.lua``), so ten
workers configured for 600 rpm send 600 requests a minute between them, evenly paced. A 429 from
the provider pauses the deployment for all of them (``limiter_pause.lua``). The arithmetic is
mirrored by the pure functions below, which the tests check the scripts against.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatq.shared import keys
from chatq.shared.deployments import Deployment
from chatq.shared.outage import REDIS_DOWN
from chatq.shared.scripts import lua
from redis import Redis

log = logging.getLogger("chatq.worker")

MINUTE_MS = 60_000.0
CONCURRENCY_POLL_MS = 25  # how soon to look again when every in-flight slot is taken
LEASE_TTL_MS = 15 * 60_000  # an in-flight slot of a worker that died is freed after this
GATE_MARGIN = 1.08  # the send gate's window, as a share of the provider's quantum: 80 ms of
# a 1 s quantum for a request to reach the provider late (1.05 drew a rare 429 on a loaded
# 2-core machine); above 1.075 it costs a little throughput, 10/1.08 calls a second of the 10
PACING_MARGIN = 0.93  # pace under the limit: a call sent late (a busy CPU) must not trip a
# windowed limiter; 0.95 left a rare 429 on a loaded 2-core machine


@dataclass(frozen=True)
class Pacing:
    """GCRA parameters of one deployment, derived from its limits."""

    ms_per_request: float  # 0 when there is no rpm limit
    ms_per_token: float  # 0 when there is no tpm limit
    request_tolerance_ms: float = 0.0
    token_tolerance_ms: float = 0.0

    @classmethod
    def of(cls, deployment: Deployment) -> Pacing:
        return cls(
            ms_per_request=interval_ms(deployment.rpm),
            ms_per_token=interval_ms(deployment.tpm),
        )


def interval_ms(per_minute: int | None, margin: float = PACING_MARGIN) -> float:
    """Milliseconds between units at ``per_minute`` (0 for no limit), kept just under it."""
    return MINUTE_MS / (per_minute * margin) if per_minute else 0.0


def gcra_slot(
    tat_ms: float, now_ms: float, increment_ms: float, tolerance_ms: float
) -> tuple[float, float]:
    """GCRA as a scheduler: ``(wait_ms, new_tat_ms)`` for the next free slot of one limit.

    The theoretical arrival time (TAT) is when the limit would be fully recovered. A call may go
    once the TAT is at most ``tolerance_ms`` ahead, so it waits ``TAT - tolerance - now`` (or
    not at all), and booking it pushes the TAT on by the call's cost. ``limiter_acquire.lua``
    does the same in Redis.
    """
    tat = max(tat_ms, now_ms)
    return max(0.0, tat - tolerance_ms - now_ms), tat + increment_ms


def quantum_shares(deployment: Deployment) -> tuple[float, int, int] | None:
    """The send gate's window (ms) and the calls and tokens it may hold: each limit's share
    of a quantum, rounded down (at least 1); None if the deployment needs no gate."""
    if not deployment.quantum_s or not (deployment.rpm or deployment.tpm):
        return None
    share = deployment.quantum_s * 1000 / MINUTE_MS
    calls = max(1, math.floor(deployment.rpm * share)) if deployment.rpm else 0
    tokens = max(1, math.floor(deployment.tpm * share)) if deployment.tpm else 0
    return deployment.quantum_s * 1000 * GATE_MARGIN, calls, tokens


def estimate_tokens(prompt_tokens: int, max_tokens: int | None, default_completion: int) -> int:
    """What a call is charged up front: the prompt plus the most it may generate."""
    return prompt_tokens + (max_tokens or default_completion)


class Deferred(Exception):
    """The job's next slot is too far off to wait for in a worker thread: run it again later."""

    def __init__(self, delay_s: float, *, busy: bool = False):
        super().__init__(f"deferred {delay_s:.1f} s")
        self.delay_s = delay_s
        self.busy = busy  # another worker's claim on it is alive: not a matter of slots


@dataclass(frozen=True)
class Lease:
    """A booked call: go after ``wait_s``; settle it when the call ends."""

    deployment: str
    lease_id: str
    estimated_tokens: int
    ms_per_token: float
    wait_s: float = 0.0
    exact_estimate: bool = True  # False when max_tokens was guessed: settle may refund
    holds_slot: bool = False  # an in-flight slot (max_concurrency) to give back
    slot_ms: float = 0.0  # when the call may go, on the limiter's clock (ms)


def settle_delta_ms(lease: Lease, actual_tokens: int | None) -> float:
    """How far to move the tokens TAT once a call's real usage is known.

    More than estimated is always charged. Less is refunded only when the estimate guessed the
    completion length: providers charge a stated ``max_tokens`` in full against their limit.
    """
    if actual_tokens is None:
        return 0.0
    delta = actual_tokens - lease.estimated_tokens
    if delta < 0 and lease.exact_estimate:
        return 0.0
    return delta * lease.ms_per_token


PAUSE_RECHECK_S = 0.1  # how stale a worker's view of an unlimited deployment's pause may be


class ClusterLimiter:
    def __init__(
        self,
        redis: Redis,
        *,
        now_ms: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.redis = redis
        self.now_ms = now_ms  # None: the Redis server's clock, the same for every host
        self.clock = clock
        self._pauses: dict[str, tuple[float, float]] = {}  # name -> (checked at, paused until)
        self._acquire = redis.register_script(lua("chatq.workers", "limiter_acquire.lua"))
        self._settle = redis.register_script(lua("chatq.workers", "limiter_settle.lua"))
        self._pause = redis.register_script(lua("chatq.workers", "limiter_pause.lua"))
        self._gate = redis.register_script(lua("chatq.workers", "limiter_gate.lua"))
        self._restamp = redis.register_script(lua("chatq.workers", "limiter_restamp.lua"))

    def _now_arg(self) -> str:
        return "" if self.now_ms is None else repr(self.now_ms())

    def book(
        self,
        deployment: Deployment,
        tokens: int,
        *,
        max_wait_s: float,
        exact_estimate: bool = True,
    ) -> Lease:
        """A lease on the next free slot. Raises ``Deferred`` (nothing booked) if the slot is
        more than ``max_wait_s`` away, saying how long to wait before asking again."""
        pacing = Pacing.of(deployment)
        if not (pacing.ms_per_request or pacing.ms_per_token or deployment.max_concurrency):
            return self._unlimited(deployment, tokens, max_wait_s)
        lease_id = secrets.token_hex(16)
        name = deployment.name
        booked, wait_ms, now_ms = self._acquire(
            keys=[
                keys.deployment_key(name, "rpm"),
                keys.deployment_key(name, "tpm"),
                keys.deployment_key(name, "inflight"),
                keys.deployment_key(name, "paused"),
            ],
            args=[
                self._now_arg(),
                pacing.ms_per_request,
                pacing.request_tolerance_ms,
                pacing.ms_per_token,
                tokens,
                pacing.token_tolerance_ms,
                deployment.max_concurrency or 0,
                lease_id,
                LEASE_TTL_MS,
                CONCURRENCY_POLL_MS,
                max_wait_s * 1000,
            ],
        )
        wait_s = float(wait_ms) / 1000
        if not booked:
            raise Deferred(wait_s)
        holds_slot = bool(deployment.max_concurrency)
        return Lease(
            name,
            lease_id,
            tokens,
            pacing.ms_per_token,
            wait_s,
            exact_estimate,
            holds_slot,
            slot_ms=float(now_ms) + float(wait_ms),
        )

    def _unlimited(self, deployment: Deployment, tokens: int, max_wait_s: float) -> Lease:
        """A deployment with no limits of its own still honours a cluster-wide pause, read
        from Redis at most every ``PAUSE_RECHECK_S`` rather than on every call."""
        now = self.clock()
        checked, until = self._pauses.get(deployment.name, (float("-inf"), 0.0))
        if now - checked > PAUSE_RECHECK_S:
            remaining_ms = self.redis.pttl(keys.deployment_key(deployment.name, "paused"))
            # Another thread may have paused meanwhile: never shorten a pause known here.
            _, known = self._pauses.get(deployment.name, (0.0, 0.0))
            until = max(known, now + max(0, remaining_ms) / 1000)
            self._pauses[deployment.name] = (now, until)
        wait = max(0.0, until - now)
        if wait > max_wait_s:
            raise Deferred(wait)
        return Lease(deployment.name, "", tokens, 0.0, wait)

    def gate(self, deployment: Deployment, lease: Lease) -> float:
        """At the moment of sending: 0 if the call may go now (it is counted as sent), else
        the seconds to wait first, so that no window of the provider's quantum gets more
        than its share of a limit, however late a worker woke to send."""
        shares = quantum_shares(deployment)
        if shares is None:
            return 0.0
        window_ms, calls, tokens = shares
        wait_ms = self._gate(
            keys=[keys.deployment_key(deployment.name, "sent")],
            args=[
                self._now_arg(),
                window_ms,
                calls,
                tokens,
                lease.estimated_tokens,
                lease.lease_id,
            ],
        )
        return int(wait_ms) / 1000

    def restamp(self, deployment: Deployment, lease: Lease) -> bool:
        """Counts a call that passed the gate as sent now: for a request that went out late,
        so that the gate holds the next calls by when the provider saw it. False if the
        deployment has no gate, or the call's entry had left the window."""
        shares = quantum_shares(deployment)
        if shares is None:
            return False
        _, _, tokens = shares
        cost = min(lease.estimated_tokens, tokens) if tokens else lease.estimated_tokens
        member = f"{lease.lease_id}|{int(cost)}"  # as limiter_gate.lua names it
        moved = self._restamp(
            keys=[keys.deployment_key(deployment.name, "sent")], args=[self._now_arg(), member]
        )
        return bool(moved)

    def settle(self, lease: Lease, actual_tokens: int | None) -> None:
        """Frees the in-flight slot and corrects the token charge with the real usage."""
        delta_ms = settle_delta_ms(lease, actual_tokens)
        if not lease.holds_slot and delta_ms == 0:
            return
        try:
            self._settle(
                keys=[
                    keys.deployment_key(lease.deployment, "tpm"),
                    keys.deployment_key(lease.deployment, "inflight"),
                ],
                args=[lease.lease_id, delta_ms],
            )
        except REDIS_DOWN as exc:  # the slot frees itself as its lease ends
            log.warning("could not settle a call's slot, redis unreachable: %s", exc)

    def pause(self, deployment: Deployment, seconds: float) -> None:
        """Holds every worker's calls to ``deployment`` for ``seconds`` (after a 429)."""
        now = self.clock()
        _, known = self._pauses.get(deployment.name, (0.0, 0.0))
        self._pauses[deployment.name] = (now, max(known, now + seconds))
        self._pause(
            keys=[keys.deployment_key(deployment.name, "paused")],
            args=[max(1, math.ceil(seconds * 1000)), self._now_arg()],
        )
