"""Deployment health shared by all workers: failures cool a deployment down, refused keys retire.

A deployment with ``FAILURE_THRESHOLD`` failures within ``FAILURE_WINDOW_S`` is skipped for
``COOLDOWN_S`` by every worker, and traffic falls back to the next deployment of its alias.
API keys the provider refuses (401/403) are retired by fingerprint, never stored in clear.
This bookkeeping is advice: while Redis cannot be reached it is skipped (no deployment counts
as cooled down, no key as retired), and the job it was kept for goes on.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from chatq.shared import keys
from chatq.shared.deployments import Deployment
from chatq.shared.errors import ChatqError
from chatq.shared.outage import REDIS_DOWN
from redis import Redis

log = logging.getLogger("chatq.worker")

FAILURE_THRESHOLD = 3
FAILURE_WINDOW_S = 10.0
COOLDOWN_S = 30.0


class NoUsableKey(ChatqError):
    code = "no_usable_api_key"


def key_fingerprint(api_key: str) -> str:
    """A short, one-way name for a key, safe to store and log."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def pick(
    deployments: Sequence[Deployment], cooled: set[str], avoid: set[str], rng: random.Random
) -> Deployment:
    """The deployment to call: the best priority among the healthy, spread by weight.

    If every deployment is cooling down or to be avoided, the most preferred one is tried
    anyway: a job is never failed only because its deployments are all unwell.
    """
    healthy = [d for d in deployments if d.name not in cooled and d.name not in avoid]
    if not healthy:
        healthy = [d for d in deployments if d.name not in cooled] or list(deployments)
    best = min(d.priority for d in healthy)
    tier = [d for d in healthy if d.priority == best]
    return rng.choices(tier, weights=[d.weight for d in tier])[0]


class DeploymentHealth:
    def __init__(
        self,
        redis: Redis,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = redis
        self.rng = rng or random.Random()
        self.clock = clock
        self._turn = 0

    def choose(self, deployments: Sequence[Deployment], avoid: set[str]) -> Deployment:
        names = [d.name for d in deployments]
        cooled = set()
        if len(deployments) > 1:
            cooldowns = [keys.deployment_key(n, "cooldown") for n in names]
            until = _advice(lambda: self.redis.mget(cooldowns), [None] * len(names))
            now_ms = self.clock() * 1000
            cooled = {n for n, u in zip(names, until, strict=True) if u and float(u) > now_ms}
        return pick(deployments, cooled, avoid, self.rng)

    def record_failure(self, deployment: Deployment) -> bool:
        """Counts a failure; True if it put the deployment into cooldown."""
        return _advice(lambda: self._record_failure(deployment), False)

    def _record_failure(self, deployment: Deployment) -> bool:
        name = deployment.name
        failures_key = keys.deployment_key(name, "failures")
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(failures_key, 0, nx=True, px=int(FAILURE_WINDOW_S * 1000))  # opens a window
        pipe.incr(failures_key)
        pipe.hincrby(keys.deployment_key(name, "stats"), "failures", 1)
        count = pipe.execute()[1]
        if count < FAILURE_THRESHOLD:
            return False
        until_ms = (self.clock() + COOLDOWN_S) * 1000
        cooldown_key = keys.deployment_key(name, "cooldown")
        if not self.redis.set(cooldown_key, until_ms, px=int(COOLDOWN_S * 1000), nx=True):
            return False  # another worker started this cooldown
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(failures_key)
        pipe.hincrby(keys.deployment_key(name, "stats"), "cooldowns", 1)
        pipe.execute()
        log.warning(
            "deployment %s cooled down for %.0f s after %d failures", name, COOLDOWN_S, count
        )
        return True

    def record_rate_limited(self, deployment: Deployment) -> None:
        stats = keys.deployment_key(deployment.name, "stats")
        _advice(lambda: self.redis.hincrby(stats, "rate_limited", 1), None)

    def api_key(self, deployment: Deployment) -> str | None:
        """The next usable key of the deployment, in turn; None if it needs none."""
        if not deployment.api_keys:
            return None
        bad_keys = keys.deployment_key(deployment.name, "bad_keys")
        retired = _advice(lambda: self.redis.smembers(bad_keys), set())
        usable = [
            k.get_secret_value()
            for k in deployment.api_keys
            if key_fingerprint(k.get_secret_value()) not in retired
        ]
        if not usable:
            raise NoUsableKey(
                f"Every API key of deployment '{deployment.name}' was refused by the provider; "
                "rotate them in the deployments file."
            )
        self._turn += 1
        return usable[self._turn % len(usable)]

    def retire_key(self, deployment: Deployment, api_key: str) -> None:
        fingerprint = key_fingerprint(api_key)
        self.redis.sadd(keys.deployment_key(deployment.name, "bad_keys"), fingerprint)
        log.error(
            "deployment %s: provider refused API key %s; it is out of use",
            deployment.name,
            fingerprint,
        )


T = TypeVar("T")


def _advice(read_or_write: Callable[[], T], without_redis: T) -> T:
    """The bookkeeping's reply, or ``without_redis`` while Redis cannot be reached."""
    try:
        return read_or_write()
    except REDIS_DOWN as exc:
        log.warning("deployment health skipped, redis unreachable: %s", exc)
        return without_redis
