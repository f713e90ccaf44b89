"""Where an accepted job waits for its provider slot: the fair scheduler's commands.

Jobs of one pool (a model alias) wait in bands (interactive before bulk, bulk with a floor),
then by tenant and fairness key: the next job released is the one whose tenant, and within it
whose key, has received the least weighted service (the Virtual Token Counter: prompt and
expected completion tokens, weighted apart, over the tenant's weight). A job waits only while
its pool has no room under its limits; the layout of the keys is in ``schedule_lib.lua``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from chatq.shared import keys
from chatq.shared.jobs import ChatJob, Priority
from chatq.shared.scripts import ScriptCall, lua
from chatq.shared.settings import SchedulerPolicy
from chatq.shared.tokens import count_prompt_tokens

NO_TENANT = "-"  # the tenant of jobs submitted with authentication off
WHOLE_TENANT = "-"  # the fairness key of jobs that name none: the tenant's own share
DEFAULT_COMPLETION_ESTIMATE = 256  # tokens a completion is expected to take, if not bounded
PARK_NO_PAYLOAD = -2  # park_job.lua: the job's record keeps no payload (sent straight to Celery)
WAIT_CHECK_S = 7 * 86400  # a job waiting in the scheduler has no message to lose: check late


@cache
def script(name: str, *libraries: str) -> str:
    """``name``'s source, with the shared functions it calls prepended."""
    parts = [*libraries, "schedule_lib.lua", name]
    return "\n".join(lua("chatq.shared.job_state", part) for part in parts)


def reserved_tokens(job: ChatJob) -> int:
    """What the job reserves on its tenant's daily token quota (settled when it ends)."""
    if job.tenant is None:
        return 0
    prompt, completion = expected_tokens(job)
    return prompt + completion


def quota_keys(job: ChatJob) -> list[str]:
    """The tenant's settings and token counter of the job's day ('' for no tenant)."""
    if job.tenant is None:
        return ["", ""]
    return [keys.tenant_key(job.tenant), keys.quota_tokens_key(job.tenant, job.created_at)]


@dataclass(frozen=True)
class Entry:
    """What the scheduler keeps of a waiting job, besides its Celery message."""

    pool: str
    band: str
    tenant: str
    key: str
    tokens: int  # booked against the pool's tokens-per-minute limit
    cost: float  # weighted service, charged to the tenant when released
    deadline_ms: int | None
    arrived_us: int  # microseconds: jobs of one key keep their order
    queue: str

    def header(self) -> str:
        deadline = "" if self.deadline_ms is None else str(self.deadline_ms)
        fields = (self.pool, self.band, self.tenant, self.key, str(self.tokens))
        rest = (repr(self.cost), deadline, str(self.arrived_us), self.queue)
        return "\t".join((*fields, *rest))


def expected_tokens(job: ChatJob) -> tuple[int, int]:
    """The job's prompt tokens and the completion tokens it is expected to take: its limit
    (``max_completion_tokens`` or ``max_tokens``) for every choice, else an estimate."""
    request = job.request
    prompt = count_prompt_tokens(m.prompt_text() for m in request.messages)
    completion = (request.completion_limit or DEFAULT_COMPLETION_ESTIMATE) * request.choice_count
    return prompt, completion


def entry_for(job: ChatJob, queue: str, policy: SchedulerPolicy) -> Entry:
    prompt, completion = expected_tokens(job)
    deadline = job.deadline
    return Entry(
        pool=job.request.model,
        band=Priority.bulk.value if job.request.priority is Priority.bulk else "interactive",
        tenant=job.tenant or NO_TENANT,
        key=job.request.fairness_key or WHOLE_TENANT,
        tokens=prompt + completion,
        cost=policy.input_weight * prompt + policy.output_weight * completion,
        deadline_ms=None if deadline is None else int(deadline * 1000),
        arrived_us=int(job.created_at * 1_000_000),
        queue=queue,
    )


def _names() -> list[str]:
    return [
        keys.SCHEDULER,
        keys.SCHEDULER_ENTRIES,
        keys.SCHEDULER_POOLS,
        keys.job_key(""),
        keys.tenant_key(""),
    ]


def admit(
    job: ChatJob,
    entry: Entry,
    message: str,
    *,
    check_at: int,
    new_id: bool,
    now: float,
    fields: list[str],
) -> ScriptCall:
    """Records a new job and sends it on, or has it wait (``create``'s reply: 1, 0 or -1)."""
    return ScriptCall(
        script("admit_job.lua", "quota_lib.lua"),
        [keys.job_key(job.id), keys.PENDING, *quota_keys(job)],
        [
            check_at,
            job.id,
            message,
            "1" if new_id else "0",
            int(now + WAIT_CHECK_S),
            entry.header(),
            *_names(),
            entry.tokens if job.tenant is not None else 0,  # as reserved_tokens(job)
            *fields,
        ],
    )


def park(job_id: str, entry: Entry, message: str, *, now: float) -> ScriptCall:
    """Puts a job a worker took back to wait for room (replies as ``park_job.lua`` says)."""
    return ScriptCall(
        script("park_job.lua"),
        [keys.job_key(job_id), keys.PENDING],
        [int(now + WAIT_CHECK_S), job_id, entry.header(), message, *_names()],
    )


@dataclass(frozen=True)
class PoolLimits:
    """What a pool may take, as ``dispatch_jobs.lua`` reads it: its first deployment's
    limiter keys and pacing, and how far ahead the scheduler lets its jobs book."""

    rpm_key: str
    tpm_key: str
    paused_key: str
    inflight_key: str
    ms_per_request: float
    ms_per_token: float
    max_concurrency: int
    horizon_ms: float
    stale_ms: float
    poll_ms: float

    @property
    def unlimited(self) -> bool:
        return not (self.ms_per_request or self.ms_per_token or self.max_concurrency)

    def fields(self) -> list[str]:
        values = {
            "rpm_key": self.rpm_key,
            "tpm_key": self.tpm_key,
            "paused_key": self.paused_key,
            "inflight_key": self.inflight_key,
            "ms_per_request": repr(self.ms_per_request),
            "ms_per_token": repr(self.ms_per_token),
            "max_concurrency": str(self.max_concurrency),
            "horizon_ms": repr(self.horizon_ms),
            "stale_ms": repr(self.stale_ms),
            "poll_ms": repr(self.poll_ms),
            "unlimited": "1" if self.unlimited else "0",
        }
        return [x for pair in values.items() for x in pair]


@dataclass(frozen=True)
class Dispatched:
    """What a dispatch did: jobs released, and when to look again (None: nothing waits)."""

    released: int
    wait_s: float | None


def dispatch(
    pool: str, limits: PoolLimits, policy: SchedulerPolicy, *, check_at: int, most: int = 64
) -> ScriptCall:
    """Releases the pool's next waiting jobs while it has room (read with ``dispatched``)."""
    return ScriptCall(
        script("dispatch_jobs.lua"),
        [keys.PENDING],
        [
            pool,
            most,
            check_at,
            policy.bulk_floor,
            policy.deadline_slack_s * 1000,
            *_names(),
            keys.QUOTA,
            *limits.fields(),
        ],
    )


def dispatched(reply: list[int]) -> Dispatched:
    released, wait_ms = (int(x) for x in reply)
    return Dispatched(released, None if wait_ms < 0 else wait_ms / 1000)
