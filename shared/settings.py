"""The one settings object, read from ``CHATQ_*`` environment variables and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from chatq.shared.redis_clients import SentinelTarget, sentinel_addresses
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_REDIS_PORT = 6379
DEFAULT_SIM_PORT = 8400
DEFAULT_MODELS = ("sim-mini", "sim-large")
LOCAL_MODEL = "smollm2"  # the model `chatq up --provider local` serves (chatq.local_model)


class ProviderTimeouts(BaseModel):
    """Seconds allowed per phase of a provider call (``CHATQ_PROVIDER_TIMEOUT__READ=...``)."""

    connect: float = Field(10.0, gt=0)
    read: float = Field(30.0, gt=0, description="Also the idle limit between two stream chunks.")


class RetryPolicy(BaseModel):
    """How provider calls are retried (``CHATQ_RETRY__MAX_RETRIES=...``)."""

    max_retries: int = Field(8, ge=0)
    initial_delay: float = Field(0.5, ge=0)
    max_delay: float = Field(20.0, gt=0)


class SchedulerPolicy(BaseModel):
    """How waiting jobs share a pool's limits (``CHATQ_SCHEDULER__MODE=fifo``, ...).

    ``fair``: a job waits in the fair scheduler while its pool has no room, and the next job
    released is the least-served tenant's (weighted tokens); ``fifo``: first come, first served.
    """

    mode: Literal["fair", "fifo"] = "fair"
    # Jobs are released while their provider slots would come within this horizon: the
    # longest a newly arrived job waits behind jobs already released, and what keeps the limit
    # busy between a dispatcher's looks.
    horizon_ms: float = Field(300.0, gt=0, le=60_000)
    tick_ms: float = Field(50.0, gt=0, le=5000)  # the longest between a dispatcher's looks
    # While both bands wait, bulk still gets at least this share of a pool's provider calls.
    bulk_floor: float = Field(0.1, ge=0, le=0.9)
    # A job this close to its deadline goes before its band's fair order.
    deadline_slack_s: float = Field(10.0, ge=0)
    # Weighted service: what a prompt token and a completion token count for (the prices).
    input_weight: float = Field(1.0, gt=0)
    output_weight: float = Field(4.0, gt=0)
    # A released job still not started after this is counted out (its worker died).
    stale_s: float = Field(10.0, gt=0)
    # A released job whose slot is further off than this goes back to wait in the scheduler.
    max_wait_s: float = Field(2.0, ge=0)


class Settings(BaseSettings):
    """Everything configurable in chatq. Built once per process by :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="CHATQ_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    # Redis: unset means the embedded server that `chatq up` starts.
    redis_url: str | None = None
    # Redis behind Sentinel, instead of redis_url: the sentinels (host:port,host:port,...),
    # the master's name, its password and database, and the sentinels' own password.
    redis_sentinels: str | None = None
    redis_master: str = "mymaster"
    redis_password: SecretStr | None = None
    redis_sentinel_password: SecretStr | None = None
    redis_db: int = Field(0, ge=0)
    # Accepted means durable: a job is answered only once this many replicas have it (WAIT;
    # 0 answers once the master has it, as Redis replicates asynchronously).
    redis_wait_replicas: int = Field(0, ge=0)
    redis_wait_timeout_ms: int = Field(1000, gt=0)
    # The gateway answers 503 to a submission Redis has not taken within this (plus the WAIT
    # above): an unreachable Redis costs the caller seconds, not the socket timeout's retries.
    submit_timeout_s: float = Field(3.0, gt=0)
    embedded_redis_port: int = DEFAULT_REDIS_PORT
    data_dir: Path = Path(".chatq")

    # Provider: unset means the one `chatq up` starts: its simulator, or with "local" a real
    # model on this host (llama.cpp's server on SmolLM2-135M; the `local` extra).
    provider_base_url: str | None = None
    provider: Literal["simulator", "local"] = "simulator"
    provider_api_key: SecretStr | None = None
    provider_rpm: int | None = Field(None, ge=1)
    provider_tpm: int | None = Field(None, ge=1)
    provider_max_concurrency: int | None = Field(None, ge=1)
    provider_transport: Literal["http", "websocket"] = "http"
    provider_max_n: int = Field(
        1, ge=1, le=128, description="Choices one call may ask for ('n'); 1 if unsupported."
    )
    provider_max_inputs: int = Field(
        256,
        ge=1,
        le=2048,
        description="Embeddings inputs one call may carry, gathered from requests that arrive "
        "together; 1: each request alone.",
    )
    provider_quantum_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="The provider's limits also hold pro rata over windows this long; 0: "
        "per minute only.",
    )
    deployments_file: Path | None = None
    provider_timeout: ProviderTimeouts = ProviderTimeouts()
    retry: RetryPolicy = RetryPolicy()
    scheduler: SchedulerPolicy = SchedulerPolicy()
    sim_port: int = DEFAULT_SIM_PORT

    # Models the gateway accepts and lists; the first is the default.
    models: Annotated[list[str], NoDecode] = list(DEFAULT_MODELS)

    # Queues and job records.
    interactive_queue: str = "chatq.interactive"
    bulk_queue: str = "chatq.bulk"
    result_ttl_s: int = Field(24 * 3600, gt=0)
    events_ttl_s: int = Field(3600, gt=0)
    wait_timeout_s: float = Field(300.0, gt=0, description="How long a caller waits for a result.")

    # Redelivery: a worker's claim on a job lapses after job_lease_s without renewal; Redis
    # gives a message that no live worker acknowledged to another after visibility_timeout_s.
    job_lease_s: float = Field(30.0, gt=0)
    visibility_timeout_s: int = Field(300, ge=1)
    # A job still queued this long after it was sent (or still running this long after its
    # claim lapsed) is checked: if its message is in no queue (lost with a worker killed
    # between taking it and claiming the job), a worker sends it again. The lease's length by
    # default, so that a dead worker's jobs come back within one bound, claimed or not.
    lost_job_check_s: float = Field(30.0, gt=0)
    shutdown_grace_s: float = Field(30.0, ge=0)
    # A job whose provider slot is further off than this goes back to the queue until then,
    # rather than hold a worker thread.
    max_inline_wait_s: float = Field(30.0, ge=0)

    # Answers of identical requests: shared while in flight, then cached this long.
    cache_ttl_s: int = Field(3600, ge=1)
    # Gathering: identical sampled requests that arrive within this window (0: off) go out
    # as one call asking for several choices, where the deployment allows it (max_n).
    gather_window_ms: float = Field(5.0, ge=0, le=1000)
    gather_max_size: int = Field(32, ge=1, le=128)

    # An HTTP batch not finished this long after it was created expires: the lines not done by
    # then fail with code batch_expired (OpenAI's completion_window, "24h").
    batch_completion_window_s: int = Field(24 * 3600, ge=1)
    # Files uploaded for and produced by HTTP batches (share this directory between gateways).
    files_dir: Path | None = Field(None, description="Default: data_dir/files.")
    max_file_bytes: int = Field(200 * 1024 * 1024, ge=1)  # OpenAI's limit for batch files
    max_batch_lines: int = Field(50_000, ge=1)  # requests per batch file, as OpenAI

    # What one request may carry (each over-limit request is told which limit it broke).
    max_request_bytes: int = Field(20 * 1024 * 1024, ge=1024)  # refused while being read
    body_read_timeout_s: float = Field(30.0, gt=0)  # a body that stalls this long: 408
    max_messages: int = Field(2048, ge=1)
    max_content_chars: int = Field(2_000_000, ge=1)  # text of all messages together
    max_tools: int = Field(128, ge=1)
    max_image_parts: int = Field(500, ge=0)

    # Sessions: history kept in Redis, compacted past a prompt token budget.
    session_token_budget: int = Field(3000, ge=200)
    session_short_ttl_s: int = Field(3600, ge=1)
    session_long_ttl_s: int = Field(30 * 86400, ge=1)

    # Hooks around each provider call, in order (dotted paths, or entrypoint:NAME).
    hooks: Annotated[list[str], NoDecode] = ["chatq.workers.hooks.masking:MaskPersonalData"]

    # Workers.
    worker_pool: Literal["threads", "gevent", "prefork", "solo"] = "threads"
    worker_concurrency: int = Field(200, ge=1)
    # Celery task events cost each job three of them and Flower a millisecond to read: off
    # unless asked for. Flower, while it runs, turns them on itself (its enable_events).
    task_events: bool = False
    # Of chat jobs, one in this many sends Celery's own three events (1: every job), chosen by
    # job id; with flower_events, none does: each job's end publishes one event instead.
    task_events_every: int = Field(10, ge=1)
    # Each chat job's end script publishes one task event carrying what Flower shows (name,
    # masked arguments, worker, times, runtime): Flower lists every chat task.
    flower_events: bool = True
    # The benchmark's baseline tasks (chatq.noop, chatq.http_probe): only in workers that
    # `chatq bench` starts, never in production ones (the probe POSTs to any URL).
    bench_tasks: bool = False

    # Who may call the gateway: API keys (`chatq keys create`) or JWT bearer tokens.
    auth_required: bool = False
    jwt_secret: SecretStr | None = Field(None, description="HS256 key for JWT bearer tokens.")
    jwt_public_key_file: Path | None = Field(None, description="RS256 public key (PEM).")
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_tenant_claim: str = "tenant"

    # Webhooks: the HMAC secret they are signed with (none: jobs cannot ask for webhooks).
    webhook_secret: SecretStr | None = None
    webhook_max_retries: int = Field(8, ge=0)
    webhook_timeout_s: float = Field(10.0, gt=0)
    # Where webhooks may go: https to public addresses only, unless these allow more.
    webhook_allow_http: bool = False
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts, addresses or networks (CIDR) webhooks may reach though internal.",
    )

    # Metrics: a worker's own Prometheus exporter (off unless set; on one host, `chatq up`
    # has the gateway's /metrics sum every process instead).
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    log_format: Literal["text", "json"] = "text"

    # Gateway and Flower.
    gateway_host: str = "127.0.0.1"
    # A gateway with auth off refuses to listen beyond loopback unless this says it may.
    allow_open_gateway: bool = False
    gateway_port: int = 8000
    flower_port: int = 5555
    # A request whose client leaves before its answer (mid-stream, or waiting for it whole):
    # "cancel" the job (the provider stops generating), "finish" it (its answer stays
    # retrievable), or "auto":
    # finish where the request carries an Idempotency-Key (its retry gets that answer, with no
    # second call), else cancel (no one could ever read the answer).
    stream_disconnect: Literal["auto", "finish", "cancel"] = "auto"

    log_level: str = "INFO"

    @field_validator("redis_sentinels")
    @classmethod
    def _check_sentinels(cls, value: str | None) -> str | None:
        if value is not None:
            sentinel_addresses(value)  # raises, saying which address is not host:port
        return value

    @field_validator("models", "hooks", "webhook_allow_hosts", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @model_validator(mode="after")
    def _local_models(self) -> Settings:
        """The local provider serves its one model, unless ``models`` says otherwise."""
        if self.provider == "local" and "models" not in self.model_fields_set:
            self.models = [LOCAL_MODEL]
        return self

    @property
    def effective_redis_url(self) -> str:
        if self.redis_sentinels:
            return SentinelTarget(
                sentinels=sentinel_addresses(self.redis_sentinels),
                master_name=self.redis_master,
                db=self.redis_db,
                password=_secret(self.redis_password),
                sentinel_password=_secret(self.redis_sentinel_password),
            ).url()
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def effective_provider_base_url(self) -> str:
        return (self.provider_base_url or f"http://127.0.0.1:{self.sim_port}/v1").rstrip("/")

    @property
    def effective_files_dir(self) -> Path:
        return self.files_dir or self.data_dir / "files"

    @property
    def default_model(self) -> str:
        return self.models[0] if self.models else DEFAULT_MODELS[0]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
