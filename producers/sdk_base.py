"""What the synchronous and asyncio SDKs share: one ``submit`` (validation included) whose
sending part each client supplies, plain or awaitable, and the reading of streamed text."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from chatq.producers.embeddings_format import (
    EmbeddingsRequest,
    embedding_input,
    stand_in_request,
)
from chatq.producers.jobs import (
    Messages,
    describe_validation_errors,
    prepare_job,
    producer_app,
    raise_for_result,
)
from chatq.shared.deployments import DeploymentRegistry
from chatq.shared.errors import InvalidJob
from chatq.shared.jobs import ChatJob, ChatRequest, ChatResult, EmbeddingInput
from chatq.shared.protocol import DeltaEvent, Event
from chatq.shared.settings import Settings
from pydantic import ValidationError

Inputs = str | list[str] | list[int] | list[list[int]]  # a text, texts or token arrays
Submitted = TypeVar("Submitted")  # what ``submit`` returns: the job id, or an awaitable of it


class ClientBase(Generic[Submitted]):
    def __init__(self, settings: Settings):
        self.settings = settings
        self.celery = producer_app(settings)
        self.deployments = DeploymentRegistry(settings)

    def submit(
        self,
        messages: Messages | None = None,
        *,
        model: str | None = None,
        request: ChatRequest | None = None,
        job_id: str | None = None,
        tenant: str | None = None,
        webhook_url: str | None = None,
        privacy: bool = True,
        resend_queued: bool = False,
        traceparent: str | None = None,
        idempotency_key: str | None = None,
        embedding: EmbeddingInput | None = None,
        **params: Any,
    ) -> Submitted:
        """Enqueues a chat job and returns its id at once (the asyncio client: awaitable).

        ``messages`` (a string is one user message) and ``params`` make the request, unless
        ``request`` is given. A job id that exists already is not sent again, unless
        ``resend_queued`` and the job is still queued: its first send may have been lost with
        a crashed sender. That is safe, as a job runs once however many of its messages
        arrive. Invalid arguments raise ``InvalidJob`` before anything is sent. The job's
        trace continues ``traceparent`` (W3C), else the current span, if tracing is on.
        ``idempotency_key``: a submission retried with it (same tenant, same request) is the
        first one's job; with another request it raises ``IdempotencyKeyReused``.
        """
        job, queue = self.prepare(
            messages,
            model=model,
            request=request,
            job_id=job_id,
            tenant=tenant,
            webhook_url=webhook_url,
            privacy=privacy,
            traceparent=traceparent,
            idempotency_key=idempotency_key,
            embedding=embedding,
            **params,
        )
        new_id = job_id is None and idempotency_key is None
        return self._send(job, queue, resend_queued=resend_queued, new_id=new_id)

    def prepare(
        self,
        messages: Messages | None = None,
        *,
        model: str | None = None,
        request: ChatRequest | None = None,
        job_id: str | None = None,
        tenant: str | None = None,
        webhook_url: str | None = None,
        privacy: bool = True,
        traceparent: str | None = None,
        idempotency_key: str | None = None,
        embedding: EmbeddingInput | None = None,
        **params: Any,
    ) -> tuple[ChatJob, str]:
        """The validated job ``submit`` would send, and its queue."""
        return prepare_job(
            self.settings,
            self.deployments,
            messages,
            model,
            request,
            job_id,
            params,
            tenant=tenant,
            webhook_url=webhook_url,
            privacy=privacy,
            traceparent=traceparent,
            idempotency_key=idempotency_key,
            embedding=embedding,
        )

    def _send(self, job: ChatJob, queue: str, *, resend_queued: bool, new_id: bool) -> Submitted:
        """Records and queues a validated job; its id. ``new_id``: its id was generated."""
        raise NotImplementedError

    def embedding_job(
        self, inputs: Inputs, model: str | None, dimensions: int | None
    ) -> dict[str, Any]:
        """``submit``'s arguments for an embeddings job of ``inputs``, checked as the
        gateway checks them."""
        try:
            asked = EmbeddingsRequest(
                model=model or self.settings.default_model, input=inputs, dimensions=dimensions
            )
        except ValidationError as exc:
            raise InvalidJob(describe_validation_errors(exc.errors())) from exc
        embedding = embedding_input(asked)
        return {"request": stand_in_request(asked, embedding), "embedding": embedding}


def vectors_of(result: ChatResult) -> list[list[float]]:
    """An embeddings job's vectors, in the order of its inputs."""
    extra = result.completion.model_extra if result.completion is not None else None
    data = sorted((extra or {}).get("data") or (), key=lambda item: item.get("index", 0))
    return [item["embedding"] for item in data]


def text_of(event: Event) -> str:
    """A delta's answer text ('' if none); at the end, the job's error raised if it failed."""
    if isinstance(event, DeltaEvent):
        return event.text
    raise_for_result(event.result)
    return ""
