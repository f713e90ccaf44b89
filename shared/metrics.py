"""Every Prometheus metric chatq exports, in one place.

Processes that share a host share a directory (``PROMETHEUS_MULTIPROC_DIR``, which ``chatq up``
sets): each process writes its counts there, and the gateway's ``/metrics`` serves their sum,
workers included. A worker on another host serves its own on ``CHATQ_WORKER_METRICS_PORT``.
Labels stay small and bounded: model alias, queue, deployment, status; never job ids or text.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

JOBS_SUBMITTED = Counter("chatq_jobs_submitted", "Jobs accepted into a queue.", ["model", "queue"])
JOBS_FINISHED = Counter(
    "chatq_jobs_finished",
    "Jobs ended by a worker, by how they ended (done, failed, cancelled).",
    ["model", "queue", "status"],
)
JOBS_RESENT = Counter(
    "chatq_jobs_resent",
    "Jobs sent again because their message was lost (in no queue, held by no worker).",
    ["queue"],
)
JOBS_RECLAIMED = Counter(
    "chatq_jobs_reclaimed",
    "Jobs sent again because the worker running them stopped renewing its claim (it died).",
    ["queue"],
)
JOBS_UNDEFERRED = Counter(
    "chatq_jobs_undeferred",
    "Jobs put aside until their provider slot, then sent again.",
    ["queue"],
)
LOOP_HEARTBEAT = Gauge(
    "chatq_worker_loop_heartbeat_timestamp_seconds",
    "When each background loop of a worker (lease_renewal, recovery) last finished a round: "
    "a stale value is a stalled loop.",
    ["loop"],
    multiprocess_mode="liveall",
)
LOOP_ERRORS = Counter(
    "chatq_worker_loop_errors",
    "Unexpected errors in a worker's background loops; each is logged and the loop goes on.",
    ["loop"],
)
JOB_RETRIES = Counter(
    "chatq_job_retries", "Provider calls repeated after a retryable failure.", ["model", "queue"]
)
JOB_LATENCY = Histogram(
    "chatq_job_latency_seconds",
    "End to end: from submission to the job's end.",
    ["model", "queue"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "chatq_time_to_first_token_seconds",
    "From submission to the first streamed delta.",
    ["model", "queue"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_LATENCY = Histogram(
    "chatq_provider_latency_seconds",
    "One provider call, from sending to its last byte.",
    ["model", "deployment"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter(
    "chatq_tokens",
    "Tokens billed by providers, by direction (prompt, completion).",
    ["model", "direction"],
)
PROVIDER_RATE_LIMITED = Counter(
    "chatq_provider_rate_limited", "429 answers from providers.", ["deployment"]
)
CACHE_LOOKUPS = Counter(
    "chatq_cache_lookups",
    "Jobs answered without a call of their own, by how (cached, coalesced, gathered, hook), "
    "and jobs that had to call (miss).",
    ["model", "result"],
)
LIMITER_WAIT = Histogram(
    "chatq_limiter_wait_seconds",
    "How long a call waited for its slot under the cluster's rate limits.",
    ["deployment"],
    buckets=WAIT_BUCKETS,
)
