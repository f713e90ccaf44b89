"""``chatq bench --scenario fairness``: tenants sharing one provider limit, the fair scheduler
against first come, first served (FIFO) in the same run, each on a fresh stack (Redis, a
simulator enforcing the limit over 1 s quanta, two workers pacing under it).

Scenes, in both modes: four equal-weight tenants submitting skewed bursts (Jain's index of the
weighted service they get while all wait, and jobs/s as a share of the limit); a light tenant's
few jobs 2 s after a heavy tenant's flood (its longest wait); Redis CPU per job with 2, 1,000
and 10,000 tenants under a high limit. In fair mode only: weights 3:1, and bulk's floor.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from redis import Redis
from rich.console import Console

from chatq.bench_stack import BenchStack, bench_stack
from chatq.process_cpu import RedisUsage
from chatq.producers.client import ChatqClient
from chatq.producers.tenants import TenantSettings, TenantStore
from chatq.shared import keys
from chatq.shared.job_state import JobCommands
from chatq.shared.settings import SchedulerPolicy

Mode = Literal["fair", "fifo"]
MODES: tuple[Mode, ...] = ("fair", "fifo")
POOL = "sim-mini"
ENDED = ("done", "failed", "cancelled")
_serial = itertools.count()


@dataclass
class FairnessOptions:
    rpm: int = 3000  # the limit the tenant scenes share
    skewed_jobs: tuple[int, ...] = (400, 200, 100, 100)  # equal-weight tenants, in this order
    flood_jobs: int = 300
    light_after_s: float = 2.0
    light_jobs: int = 5
    weighted_jobs: tuple[int, int] = (750, 300)  # the weight-3 tenant's, the weight-1 one's
    bulk_jobs: tuple[int, int] = (600, 150)  # the interactive tenant's, the bulk one's
    cpu_rpm: int = 30_000  # the limit of the Redis CPU scene
    cpu_jobs: int = 10_000  # at each number of tenants, submitted round robin
    cpu_tenants: tuple[int, ...] = (2, 1_000, 10_000)
    cpu_warmup_jobs: int = 2_000  # at the full rate first: the first size pays no cold start
    max_tokens: int = 16
    workers: int = 2
    timeout_s: float = 120.0


# -- the arithmetic ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ended:
    """A job that ended, as its record has it (tokens from its provider call's usage)."""

    tenant: str
    status: str
    created_at: float
    finished_at: float
    prompt_tokens: int = 0
    completion_tokens: int = 0


def weighted_tokens(job: Ended, policy: SchedulerPolicy) -> float:
    """The service a job received, weighted as the scheduler weighs it."""
    return policy.input_weight * job.prompt_tokens + policy.output_weight * job.completion_tokens


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index, (sum x)^2 / (n sum x^2): 1 when all are equal, 1/n when one
    takes everything; NaN when there is nothing to share."""
    squares = sum(x * x for x in values)
    if not values or squares == 0:
        return float("nan")
    return sum(values) ** 2 / (len(values) * squares)


def backlogged_window(jobs: Iterable[Ended], tenants: Iterable[str]) -> tuple[float, float]:
    """When every one of ``tenants`` had jobs waiting: from the last one's first submission
    to the first one's last job ending."""
    firsts: dict[str, float] = {}
    lasts: dict[str, float] = {}
    for job in jobs:
        firsts[job.tenant] = min(firsts.get(job.tenant, job.created_at), job.created_at)
        lasts[job.tenant] = max(lasts.get(job.tenant, job.finished_at), job.finished_at)
    names = list(tenants)
    return max(firsts[t] for t in names), min(lasts[t] for t in names)


def _within(jobs: Iterable[Ended], window: tuple[float, float]) -> Iterator[Ended]:
    start, end = window
    return (j for j in jobs if j.status == "done" and start <= j.finished_at <= end)


def service_in(
    jobs: Iterable[Ended],
    window: tuple[float, float],
    tenants: Iterable[str],
    policy: SchedulerPolicy,
) -> dict[str, float]:
    """Weighted tokens served to each tenant by the jobs that ended within ``window``."""
    served = dict.fromkeys(tenants, 0.0)
    for job in _within(jobs, window):
        if job.tenant in served:
            served[job.tenant] += weighted_tokens(job, policy)
    return served


def calls_in(
    jobs: Iterable[Ended], window: tuple[float, float], tenants: Iterable[str]
) -> dict[str, int]:
    """Jobs of each tenant that ended within ``window``."""
    calls = dict.fromkeys(tenants, 0)
    for job in _within(jobs, window):
        if job.tenant in calls:
            calls[job.tenant] += 1
    return calls


def share(amounts: Mapping[str, float], name: str) -> float:
    """``name``'s part of the whole (NaN if the whole is nothing)."""
    total = sum(amounts.values())
    return amounts[name] / total if total else float("nan")


def jobs_per_s(jobs: Sequence[Ended]) -> float:
    """Jobs ended per second, from the first end to the last."""
    ends = sorted(j.finished_at for j in jobs if j.status == "done")
    if len(ends) < 2 or ends[-1] == ends[0]:
        return float("nan")
    return (len(ends) - 1) / (ends[-1] - ends[0])


def longest_wait(jobs: Iterable[Ended]) -> float:
    """The longest any job took from its submission to its end."""
    return max(j.finished_at - j.created_at for j in jobs)


# -- the scenes ----------------------------------------------------------------------------------


@dataclass
class ModeFigures:
    """What one mode measured (NaN or empty where the mode did not run a scene)."""

    jain: float = float("nan")
    jain_window_s: float = float("nan")
    throughput_share: float = float("nan")
    light_wait_max_s: float = float("nan")
    cpu_ms_per_job: dict[str, float] = field(default_factory=dict)
    cpu_jobs_per_s: dict[str, float] = field(default_factory=dict)
    peak_backlogged_tenants: dict[str, int] = field(default_factory=dict)
    weight_ratio: float = float("nan")
    weight_window_s: float = float("nan")
    bulk_share: float = float("nan")
    bulk_window_s: float = float("nan")
    rate_limited: dict[str, int] = field(default_factory=dict)  # 429s by scene
    not_done: int = 0


@dataclass
class Scene:
    """A stack running in one mode, and a client submitting as that mode does."""

    stack: BenchStack
    client: ChatqClient
    options: FairnessOptions
    figures: ModeFigures
    policy: SchedulerPolicy

    def submit(self, tenant: str, count: int, priority: str = "interactive") -> list[str]:
        return [
            self.client.submit(
                f"Fairness probe {next(_serial)} from {tenant}: say hello.",
                model=POOL,
                tenant=tenant,
                max_tokens=self.options.max_tokens,
                priority=priority,
            )
            for _ in range(count)
        ]

    def await_calls(self, count: int) -> None:
        """Until the simulator has answered ``count`` calls since its reset (or the timeout):
        watched on the simulator, so that waiting costs Redis nothing."""
        deadline = time.monotonic() + self.options.timeout_s
        while self.stack.sim_stats()["completed"] < count and time.monotonic() < deadline:
            time.sleep(0.1)

    def ended(self, job_ids: list[str], scene: str) -> list[Ended]:
        """The jobs' records, once all have ended (or the timeout); tallies those not done,
        and the simulator's 429s since its reset as the ``scene``'s."""
        deadline = time.monotonic() + self.options.timeout_s
        self.await_calls(len(job_ids))
        while True:
            jobs = read_ended(self.client.store.redis, job_ids)
            if len(jobs) == len(job_ids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        stats = self.stack.sim_stats()
        self.stack.sim_reset()
        self.figures.rate_limited[scene] = stats["rate_limited"]
        self.figures.not_done += len(job_ids) - sum(j.status == "done" for j in jobs)
        return jobs


def read_ended(redis: Redis, job_ids: list[str]) -> list[Ended]:
    """The records of those of ``job_ids`` that have ended."""
    found: list[Ended] = []
    for start in range(0, len(job_ids), 1000):
        with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids[start : start + 1000]:
                JobCommands.get(job_id).run(pipe, {})  # the record, as job_state names it
            records = pipe.execute()
        for record in records:
            tenant, status = record.get("tenant"), record.get("status")
            created, finished = record.get("created_at"), record.get("finished_at")
            result = record.get("result")
            if status not in ENDED:
                continue
            usage = (json.loads(result or "{}").get("completion") or {}).get("usage") or {}
            found.append(
                Ended(
                    tenant=tenant or "",
                    status=status,
                    created_at=float(created),
                    finished_at=float(finished),
                    prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    completion_tokens=int(usage.get("completion_tokens", 0)),
                )
            )
    return found


@contextmanager
def mode_scene(
    options: FairnessOptions, mode: Mode, rpm: int, figures: ModeFigures, console: Console
) -> Iterator[Scene]:
    """A fresh stack whose workers (and this client) run ``mode`` under ``rpm``."""
    env = {"CHATQ_PROVIDER_RPM": str(rpm), "CHATQ_SCHEDULER__MODE": mode}
    sim_args = ("--ttft-ms", "0", "--tokens-per-s", "0", "--rpm", str(rpm), "--quantum-s", "1")
    label = f"Fairness, {mode}, {rpm} rpm"
    with bench_stack(console, label, sim_args=sim_args, env=env, workers=options.workers) as stack:
        policy = SchedulerPolicy(mode=mode)
        settings = stack.settings.model_copy(update={"scheduler": policy})
        with ChatqClient(settings) as client:
            scene = Scene(stack, client, options, figures, policy)
            scene.ended(scene.submit("warm-up", 5), "warm-up")
            yield scene


def skewed(scene: Scene, console: Console) -> None:
    """Equal-weight tenants submitting bursts of very different sizes, one after another."""
    sizes = scene.options.skewed_jobs
    tenants = [f"skewed-{chr(ord('a') + i)}" for i in range(len(sizes))]
    with console.status(f"Skewed load: {'/'.join(map(str, sizes))} jobs..."):
        job_ids = [scene.submit(tenant, n) for tenant, n in zip(tenants, sizes, strict=True)]
        jobs = scene.ended([j for ids in job_ids for j in ids], "skewed")
    window = backlogged_window(jobs, tenants)
    served = service_in(jobs, window, tenants, scene.policy)
    scene.figures.jain = jain_index(list(served.values()))
    scene.figures.jain_window_s = window[1] - window[0]
    scene.figures.throughput_share = jobs_per_s(jobs) / (scene.options.rpm / 60)


def flood(scene: Scene, console: Console) -> None:
    """A light tenant's few jobs, submitted while a heavy tenant's flood waits."""
    o = scene.options
    with console.status(f"A flood of {o.flood_jobs}, then {o.light_jobs} light jobs..."):
        started = time.monotonic()
        flood_ids = scene.submit("flood", o.flood_jobs)
        time.sleep(max(0.0, started + o.light_after_s - time.monotonic()))
        light_ids = scene.submit("light", o.light_jobs)
        jobs = scene.ended(flood_ids + light_ids, "flood")
    scene.figures.light_wait_max_s = longest_wait(j for j in jobs if j.tenant == "light")


def weights(scene: Scene, console: Console) -> None:
    """Two backlogged tenants, one of weight 3: what each was served while both waited."""
    heavy, light = scene.options.weighted_jobs
    TenantStore(scene.client.store.redis).set_tenant("weight-3", TenantSettings(weight=3))
    with console.status(f"Weights 3:1, {heavy} and {light} jobs..."):
        job_ids = scene.submit("weight-3", heavy) + scene.submit("weight-1", light)
        jobs = scene.ended(job_ids, "weights")
    window = backlogged_window(jobs, ["weight-3", "weight-1"])
    served = service_in(jobs, window, ["weight-3", "weight-1"], scene.policy)
    scene.figures.weight_ratio = served["weight-3"] / served["weight-1"]
    scene.figures.weight_window_s = window[1] - window[0]


def bulk_floor(scene: Scene, console: Console) -> None:
    """An interactive tenant saturating the limit beside a bulk one: bulk's share of calls."""
    chat, batch = scene.options.bulk_jobs
    with console.status(f"Bulk floor: {chat} interactive and {batch} bulk jobs..."):
        job_ids = scene.submit("interactive", chat) + scene.submit("bulk", batch, "bulk")
        jobs = scene.ended(job_ids, "bulk")
    window = backlogged_window(jobs, ["interactive", "bulk"])
    scene.figures.bulk_share = share(calls_in(jobs, window, ["interactive", "bulk"]), "bulk")
    scene.figures.bulk_window_s = window[1] - window[0]


def redis_cpu(scene: Scene, tenants: int, console: Console) -> None:
    """Redis CPU per job, submission to end, with the jobs spread over ``tenants`` tenants."""
    redis = scene.client.store.redis
    waiting = f"{keys.SCHEDULER}{POOL}:interactive:tenants"  # schedule_lib.lua's B:tenants
    peak, count = 0, scene.options.cpu_jobs
    with console.status(f"Redis CPU: {count} jobs of {tenants} tenants..."):
        before = RedisUsage.of(redis)
        started = time.perf_counter()
        job_ids = []
        for i in range(count):
            job_ids += scene.submit(f"cpu{tenants}-{i % tenants}", 1)
            if i % 500 == 499:
                peak = max(peak, redis.zcard(waiting))
        scene.await_calls(count)
        took = time.perf_counter() - started
        time.sleep(0.2)  # the last ends are written just after their calls
        used = RedisUsage.of(redis).since(before)
    size = str(tenants)
    done = sum(j.status == "done" for j in scene.ended(job_ids, f"cpu-{size}"))
    scene.figures.cpu_ms_per_job[size] = used.cpu_s * 1000 / max(1, done)
    scene.figures.cpu_jobs_per_s[size] = done / took
    scene.figures.peak_backlogged_tenants[size] = peak


def measure_fairness(options: FairnessOptions, console: Console) -> dict[str, Any]:
    """Every scene in each mode, the fair scheduler first; the figures for the report."""
    started = time.perf_counter()
    figures = {mode: ModeFigures() for mode in MODES}
    for mode in MODES:
        with mode_scene(options, mode, options.rpm, figures[mode], console) as scene:
            skewed(scene, console)
            flood(scene, console)
            if mode == "fair":
                weights(scene, console)
                bulk_floor(scene, console)
    for mode in MODES:
        with mode_scene(options, mode, options.cpu_rpm, figures[mode], console) as scene:
            with console.status(f"Warming up at {options.cpu_rpm} rpm..."):
                scene.ended(scene.submit("warm-up", options.cpu_warmup_jobs), "warm-up-load")
            for tenants in options.cpu_tenants:
                redis_cpu(scene, tenants, console)
    return _report(options, figures, time.perf_counter() - started)


def _report(
    options: FairnessOptions, figures: dict[str, ModeFigures], wall_s: float
) -> dict[str, Any]:
    fair, fifo = figures["fair"], figures["fifo"]
    smallest, largest = str(options.cpu_tenants[0]), str(options.cpu_tenants[-1])
    report: dict[str, Any] = {
        "fairness_options": asdict(options),
        "fairness_throughput_fair_vs_fifo": round(fair.throughput_share / fifo.throughput_share, 3),
        "fairness_wall_s": round(wall_s, 1),
    }
    for mode, f in figures.items():
        cpu_ratio = f.cpu_ms_per_job[largest] / f.cpu_ms_per_job[smallest]
        report[f"fairness_{mode}"] = {
            **{k: _rounded(v) for k, v in asdict(f).items()},
            "cpu_ratio_largest_to_smallest": round(cpu_ratio, 2),
        }
    report["fairness_fair"]["bulk_floor"] = SchedulerPolicy().bulk_floor
    return report


def _rounded(value: Any) -> Any:
    """Floats to 3 places, NaN (a scene the mode did not run) to None, for the JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
