"""Every Redis key and channel chatq uses, on one screen.

chatq:job:{id}         hash    the job record: status, attempts, timings, result (JSON)
chatq:events:{id}      stream  the job's events, in order: deltas, then one end event (a job
                               with a reply channel has it there only when watched)
chatq:replies:{id}     channel the ends (ChatResult JSON) of jobs a gateway process awaits
chatq:dep:{name}:rpm        string  requests GCRA theoretical arrival time (ms), all workers
chatq:dep:{name}:tpm        string  tokens GCRA theoretical arrival time (ms)
chatq:dep:{name}:inflight   zset    calls in flight: lease id -> lease expiry (ms)
chatq:dep:{name}:paused     string  paused-until (ms), set after a 429; expires with the pause
chatq:dep:{name}:sent       zset    calls sent within the last quantum: '<lease>|<tokens>' -> ms
chatq:dep:{name}:failures   string  recent failures (expires after the failure window)
chatq:dep:{name}:cooldown   string  cooled-down-until (ms): skipped while set
chatq:dep:{name}:bad_keys   set     fingerprints of API keys the provider refused
chatq:dep:{name}:stats      hash    failures, rate_limited, cooldowns
chatq:answer:{key}     string  identical requests' answer: the id of the job leading their
                               call; once it is done, its record is their cached answer
                               (expires with the cache TTL, or the lease if not cached)
chatq:cache:stats      hash    cache_hits, coalesced, tokens_saved
chatq:batch:{id}       hash    a bulk batch's progress: status, total, done, failed, invalid; cancel
chatq:batch:{id}:driver string the gateway process running an HTTP batch (lease, renewed)
chatq:batches          zset    batches created over HTTP: id -> created at
chatq:file:{id}        hash    an uploaded or produced file: filename, bytes, purpose, created_at
chatq:files            zset    files: id -> created at
chatq:pending          zset    jobs not ended yet: job id -> when to check on them (their message
                               exists; or, once claimed, their claim has not lapsed)
chatq:sweeper          string  the worker checking pending jobs now (expires: one per interval)
chatq:deferred         zset    jobs put aside until their slot: job id -> when to send it again
chatq:sched:{pool}:...  the fair scheduler's queues, virtual times and limits per pool (a model
                        alias): the layout is in shared/job_state/schedule_lib.lua
chatq:sched:entries    hash    jobs waiting in the scheduler -> their entry and Celery message
chatq:sched:pools      set     pools with jobs waiting
chatq:sched:share:{t}  hash    weighted service released per tenant in a 10 s window (expires)
chatq:dlq              zset    dead letters: job id -> failed at (newest last)
chatq:dlq:jobs         hash    dead letters: job id -> the job and why it failed (JSON)
chatq:apikey:{sha256}  hash    an API key, by the SHA-256 of its secret: key_id, tenant, name,
                               created_at, revoked_at (the secret itself is never stored)
chatq:apikeys          hash    key_id -> SHA-256 of the key (to list and revoke by id)
chatq:tenant:{name}    hash    a tenant's settings: rpm, tokens_per_day, privacy, weight, band
chatq:quota:{tenant}:rpm:{minute}  string  requests admitted in that minute (expires)
chatq:quota:{tenant}:tokens:{day}  string  tokens used that UTC day (expires)
chatq:session:{tenant}:{id}        hash  a conversation: summary, summarised (turns folded in),
                                         ttl_s, user; expires unless used
chatq:session:{tenant}:{id}:turns  list  its recent turns, oldest first (message JSON)
chatq:user:{tenant}:{uid}:profile  hash  attributes a tenant keeps about one of its users
chatq:user:{tenant}:{uid}:sessions set   that user's sessions   (erasing a user uses these)
chatq:user:{tenant}:{uid}:jobs     set   that user's job ids
chatq:user:{tenant}:{uid}:cache    set   cache keys that user's jobs filled
chatq:demo:orders      hash    the order-status hook example's orders: order id -> status
chatq:cancels          channel ids of jobs cancelled while running: their workers stop the call
chatq.interactive      list    Celery queue for chat traffic (kombu owns its layout)
chatq.bulk             list    Celery queue for bulk work
unacked_index          zset    kombu: when each held message was taken, by delivery tag
unacked                hash    kombu: messages workers hold, by delivery tag (restored by kombu
                               after the visibility timeout if never acknowledged); chat
                               messages are held in memory only (chatq.shared.broker)
"""

from __future__ import annotations

PREFIX = "chatq"
DEAD_LETTERS = f"{PREFIX}:dlq"
DEAD_LETTER_JOBS = f"{PREFIX}:dlq:jobs"
PENDING = f"{PREFIX}:pending"
CANCELS = f"{PREFIX}:cancels"
SWEEPER = f"{PREFIX}:sweeper"
DEFERRED = f"{PREFIX}:deferred"
QUOTA = f"{PREFIX}:quota:"
SCHEDULER = f"{PREFIX}:sched:"
SCHEDULER_ENTRIES = f"{PREFIX}:sched:entries"
SCHEDULER_POOLS = f"{PREFIX}:sched:pools"
KOMBU_UNACKED = "unacked"
KOMBU_UNACKED_INDEX = "unacked_index"
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def queue_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue's messages in, one per priority step."""
    return [queue if p == 0 else f"{queue}{KOMBU_PRIORITY_SEP}{p}" for p in KOMBU_PRIORITY_STEPS]


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def events_key(job_id: str) -> str:
    return f"{PREFIX}:events:{job_id}"


def reply_channel(process_id: str) -> str:
    """The pub/sub channel a process receives the ends of the jobs it awaits on."""
    return f"{PREFIX}:replies:{process_id}"


def deployment_key(name: str, part: str) -> str:
    """A key of deployment ``name``: rpm, tpm, inflight, paused, failures, cooldown, bad_keys."""
    return f"{PREFIX}:dep:{name}:{part}"


CACHE_STATS = f"{PREFIX}:cache:stats"


def answer_key(request_key: str) -> str:
    return f"{PREFIX}:answer:{request_key}"


def batch_key(batch_id: str) -> str:
    return f"{PREFIX}:batch:{batch_id}"


def batch_driver_key(batch_id: str) -> str:
    return f"{PREFIX}:batch:{batch_id}:driver"


BATCHES = f"{PREFIX}:batches"
FILES = f"{PREFIX}:files"


def file_key(file_id: str) -> str:
    return f"{PREFIX}:file:{file_id}"


API_KEYS = f"{PREFIX}:apikeys"


def api_key(digest: str) -> str:
    return f"{PREFIX}:apikey:{digest}"


def tenant_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}"


def quota_rpm_key(tenant: str, now: float) -> str:
    """The counter of the tenant's requests in the clock minute of ``now`` (Unix seconds)."""
    return f"{PREFIX}:quota:{tenant}:rpm:{int(now // 60)}"


def quota_tokens_key(tenant: str, now: float) -> str:
    """The counter of the tenant's tokens on the UTC day of ``now`` (dispatch_jobs.lua builds
    it from ``QUOTA`` too)."""
    return f"{QUOTA}{tenant}:tokens:{int(now // 86400)}"


DEMO_ORDERS = f"{PREFIX}:demo:orders"


def _tenant_part(tenant: str | None) -> str:
    return tenant or "-"


def session_key(tenant: str | None, session_id: str) -> str:
    return f"{PREFIX}:session:{_tenant_part(tenant)}:{session_id}"


def session_turns_key(tenant: str | None, session_id: str) -> str:
    return f"{session_key(tenant, session_id)}:turns"


def response_key(tenant: str | None, response_id: str) -> str:
    """A stored ``/v1/responses`` request (``chatq.producers.response_store``)."""
    return f"{PREFIX}:response:{_tenant_part(tenant)}:{response_id}"


def user_key(tenant: str | None, user_id: str, part: str) -> str:
    """A key of one user of a tenant: profile, sessions, jobs or cache."""
    return f"{PREFIX}:user:{_tenant_part(tenant)}:{user_id}:{part}"
