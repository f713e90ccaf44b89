"""Chaos under load: a steady stream of jobs while a random worker is SIGKILLed every few
seconds and started again. What must hold: every job ends exactly once, done; none takes
longer than the recovery bound (a claim's lease plus one sweep) beyond its own run time.

Used by ``chatq bench --scenario chaos`` (two minutes) and by the test suite (shorter).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis

from chatq.processes import Part, kill
from chatq.producers.client import ChatqClient
from chatq.shared.job_state import JobCommands, pipelined
from chatq.shared.jobs import JobStatus
from chatq.shared.settings import Settings
from chatq.workers.recovery import sweep_interval_s


@dataclass(frozen=True)
class ChaosOptions:
    duration_s: float = 120.0
    kill_every_s: float = 15.0  # on average; each wait is drawn from 0.6x to 1.4x this
    jobs_per_s: float = 10.0
    lease_s: float = 10.0  # CHATQ_JOB_LEASE_S for the workers
    lost_job_check_s: float = 10.0  # CHATQ_LOST_JOB_CHECK_S: sets the sweep interval
    seed: int = 0

    @property
    def recovery_bound_s(self) -> float:
        """How soon a dead worker's jobs run again: once its claims lapse, or (a message it
        had taken and not yet claimed) once the job's check finds the message gone; then
        within one sweep."""
        return max(self.lease_s, self.lost_job_check_s) + sweep_interval_s(self.lost_job_check_s)

    def worker_env(self) -> dict[str, str]:
        return {
            "CHATQ_JOB_LEASE_S": str(self.lease_s),
            "CHATQ_LOST_JOB_CHECK_S": str(self.lost_job_check_s),
        }

    def client_settings(self, settings: Settings) -> Settings:
        """The submitting side's settings: its jobs are checked on as the workers sweep."""
        return settings.model_copy(update={"lost_job_check_s": self.lost_job_check_s})


@dataclass
class ChaosReport:
    jobs: int = 0
    kills: int = 0
    done: int = 0
    not_done: dict[str, str] = field(default_factory=dict)  # job id -> how it ended
    end_events: Counter[int] = field(default_factory=Counter)  # end events per job -> jobs
    provider_calls: Counter[int] = field(default_factory=Counter)  # calls per job -> jobs
    # Jobs the provider was called for more often than they were claimed: a second call
    # beside a live run, or after the job ended. Must be 0; a job's worker dying makes a
    # second claim, and so may explain a second call.
    calls_beyond_claims: int = 0
    latencies_s: list[float] = field(default_factory=list)  # submission to end, per job

    @property
    def ended_once(self) -> bool:
        return set(self.end_events) == {1}

    @property
    def max_latency_s(self) -> float:
        return max(self.latencies_s, default=0.0)

    def as_dict(self, prefix: str = "chaos_") -> dict[str, object]:
        ordered = sorted(self.latencies_s)
        return {
            f"{prefix}jobs": self.jobs,
            f"{prefix}kills": self.kills,
            f"{prefix}done": self.done,
            f"{prefix}ended_exactly_once": self.ended_once,
            f"{prefix}jobs_called_more_than_once": sum(
                n for calls, n in self.provider_calls.items() if calls > 1
            ),
            f"{prefix}calls_beyond_claims": self.calls_beyond_claims,
            f"{prefix}latency_p50_s": round(ordered[len(ordered) // 2], 2) if ordered else 0,
            f"{prefix}latency_max_s": round(self.max_latency_s, 2),
        }


def run_chaos(
    client: ChatqClient,
    workers: list[Part],
    restart: Callable[[int], Part],
    sim_calls: Callable[[], Counter[str]],
    options: ChaosOptions,
    *,
    say: Callable[[str], None] = lambda text: None,
) -> ChaosReport:
    """Runs the load and the kills, then waits for every job and reports how they ended.

    ``restart(i)`` starts worker ``i`` (0-based) again; ``sim_calls()`` counts the provider
    calls the simulator received, by job id.
    """
    rng = random.Random(options.seed)
    report = ChaosReport()
    submitted: list[str] = []
    stop_load = threading.Event()

    def load() -> None:
        gap = 1 / options.jobs_per_s
        serial = 0
        next_at = time.monotonic()
        while not stop_load.is_set():
            serial += 1
            submitted.append(client.submit(f"Chaos job {serial}: still there?", max_tokens=16))
            next_at += gap
            stop_load.wait(max(0.0, next_at - time.monotonic()))

    loader = threading.Thread(target=load, name="chaos-load", daemon=True)
    loader.start()
    ends_at = time.monotonic() + options.duration_s
    try:
        while (wait := rng.uniform(0.6, 1.4) * options.kill_every_s) < ends_at - time.monotonic():
            time.sleep(wait)
            index = rng.randrange(len(workers))
            say(f"killing {workers[index].name}")
            kill(workers[index])
            report.kills += 1
            workers[index] = restart(index)
        time.sleep(max(0.0, ends_at - time.monotonic()))
    finally:
        stop_load.set()
        loader.join()
    report.jobs = len(submitted)
    wait_s = options.recovery_bound_s * 3 + 60
    attempts: dict[str, int] = {}
    for job_id in submitted:
        result = client.result(job_id, timeout=wait_s)
        if result.status is JobStatus.done:
            report.done += 1
        else:
            report.not_done[job_id] = result.status.value
        record = client.status(job_id)
        attempts[job_id] = record.attempts
        report.latencies_s.append((record.finished_at or 0) - (record.created_at or 0))
    report.end_events.update(_end_events(client.store.redis, submitted))
    calls = sim_calls()
    report.provider_calls.update(calls.get(job_id, 0) for job_id in submitted)
    report.calls_beyond_claims = sum(calls.get(j, 0) > attempts[j] for j in submitted)
    return report


def _end_events(redis: Redis, job_ids: list[str]) -> list[int]:
    """How many end events each job's stream holds."""
    streams = pipelined(redis, (JobCommands.published(job_id) for job_id in job_ids))
    return [sum(1 for _, event in stream if event.get("type") == "end") for stream in streams]
