"""The async job API: submit now, collect later (``/v1/jobs``), by polling, SSE or WebSocket.

A tenant only ever sees its own jobs: another tenant's job id answers 404, as if absent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from chatq.producers import request_headers
from chatq.producers.aio import AsyncChatqClient
from chatq.producers.auth import Principal
from chatq.producers.callers import AdmittedCaller, Caller, Client
from chatq.producers.chat_routes import Chunk, Failure, chunks, sse_line
from chatq.producers.openai_format import ChunkServer, completion
from chatq.producers.request_headers import (
    IdempotencyKeyHeader,
    SessionIdHeader,
    TraceparentHeader,
)
from chatq.shared import tracing
from chatq.shared.errors import ChatqError, InvalidRequest, JobNotFound, error_body, short
from chatq.shared.jobs import ChatRequest, JobStatus
from chatq.shared.store import JobRecord
from fastapi import APIRouter, Header, WebSocket, WebSocketDisconnect, status
from fastapi.responses import StreamingResponse
from pydantic import AnyHttpUrl, BaseModel, Field

router = APIRouter()
MAX_EVENT_ID_DIGITS = 9


class JobRequest(ChatRequest):
    """A chat completion request to run in the background."""

    webhook_url: AnyHttpUrl | None = Field(
        None, description="Called with the finished job (POST, HMAC-signed), and retried."
    )


class JobError(BaseModel):
    type: str
    code: str | None = None
    message: str
    param: str | None = None


class JobObject(BaseModel):
    """A job as the API shows it: its status, and its answer once done."""

    id: str
    object: str = "chat.job"
    status: JobStatus
    model: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    result: dict[str, Any] | None = Field(None, description="A chat.completion, once done.")
    error: JobError | None = None


def job_object(record: JobRecord) -> JobObject:
    result = record.result
    body = None
    error = None
    if result is not None and result.status is JobStatus.done:
        body = completion(result, int(record.finished_at or time.time()))
    elif result is not None and result.error is not None:
        error = JobError(**result.error.model_dump(exclude={"status"}))
    return JobObject(
        id=record.job_id,
        status=record.status,
        model=record.model,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        attempts=record.attempts,
        result=body,
        error=error,
    )


async def own_job(client: AsyncChatqClient, job_id: str, who: Principal) -> JobRecord:
    """The job's record if the caller's tenant owns it; 404 otherwise, the same whether the
    job is absent or another tenant's."""
    try:
        record = await client.status(job_id)
    except JobNotFound:
        record = None
    if record is None or record.tenant != who.tenant:
        raise JobNotFound(f"No job with id {short(job_id)}.", param="job_id")
    return record


@router.post("/v1/jobs", status_code=status.HTTP_202_ACCEPTED)
async def submit_job(
    body: JobRequest,
    client: Client,
    who: AdmittedCaller,
    session_id: SessionIdHeader = None,
    idempotency_key: IdempotencyKeyHeader = None,
    traceparent: TraceparentHeader = None,
) -> JobObject:
    """Queues a chat job and returns at once; its id fetches the outcome later."""
    key = request_headers.check_idempotency_key(idempotency_key)
    session = request_headers.check_session_id(session_id)
    request = ChatRequest.model_validate(
        body.model_dump(exclude={"webhook_url"}, exclude_unset=True)
    )
    if session and request.session_id is None:
        request.session_id = session
    webhook = str(body.webhook_url) if body.webhook_url else None
    job_id = await client.submit(
        request=request,
        tenant=who.tenant,
        webhook_url=webhook,
        privacy=who.privacy,
        traceparent=tracing.onward(traceparent),
        idempotency_key=key,
    )
    # As accepted: a worker may have started it already, which GET /v1/jobs/{id} shows.
    return JobObject(
        id=job_id, status=JobStatus.queued, model=request.model, created_at=time.time()
    )


@router.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, client: Client, who: Caller) -> JobObject:
    return job_object(await own_job(client, job_id, who))


@router.delete("/v1/jobs/{job_id}")
async def cancel_job(job_id: str, client: Client, who: Caller) -> JobObject:
    """Cancels the job if it has not ended; either way, returns how it stands."""
    await own_job(client, job_id, who)
    await client.cancel(job_id)
    return job_object(await client.status(job_id))


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Chunk events."}},
)
async def job_events(
    job_id: str,
    client: Client,
    who: Caller,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this chunk: the `id:` of the last event received.",
            json_schema_extra={"pattern": f"^[0-9]{{0,{MAX_EVENT_ID_DIGITS}}}$"},
        ),
    ] = None,
) -> StreamingResponse:
    """The job's answer as ``chat.completion.chunk`` server-sent events, from the first delta
    however late the caller connects (or after ``Last-Event-ID``), then ``[DONE]``. Each
    chunk's event carries its number as ``id:``."""
    after = resume_after(last_event_id, "Last-Event-ID")
    record = await own_job(client, job_id, who)
    created = int(record.created_at or time.time())
    server = ChunkServer(job_id, record.model or "", created, include_usage=True)
    events = numbered(chunks(client, job_id, server), after)
    return StreamingResponse(_sse_events(events), media_type="text/event-stream")


@router.websocket("/v1/jobs/{job_id}/ws")
async def job_socket(websocket: WebSocket, job_id: str) -> None:
    """The same chunks as ``/events``, one per text frame, then ``[DONE]``; a client that
    reconnects passes how many chunks it has as ``?last_event_id=``. Browsers, which cannot
    set headers here, may pass the credential as ``?api_key=``."""
    app = websocket.app
    client: AsyncChatqClient = app.state.client
    credential = websocket.headers.get("authorization")
    if credential is None and (key := websocket.query_params.get("api_key")):
        credential = f"Bearer {key}"
    await websocket.accept()
    try:
        after = resume_after(websocket.query_params.get("last_event_id"), "last_event_id")
        who = await app.state.authenticator.authenticate(credential)
        record = await own_job(client, job_id, who)
    except ChatqError as exc:
        await websocket.send_text(json.dumps(error_body(exc)))
        await websocket.close(code=1008)
        return
    created = int(record.created_at or time.time())
    server = ChunkServer(job_id, record.model or "", created, include_usage=True)
    try:
        async for _, item in numbered(chunks(client, job_id, server), after):
            await websocket.send_text(_frame(item))
        await websocket.close()
    except WebSocketDisconnect:
        return


def resume_after(value: str | None, name: str) -> int:
    """How many chunks a reconnecting caller has already (its last event id); 0: none."""
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > MAX_EVENT_ID_DIGITS:
        raise InvalidRequest(
            f"{name} must be the id of an event this stream sent (a whole number of at most "
            f"{MAX_EVENT_ID_DIGITS} digits); got {short(value)}.",
            param=name,
        )
    return int(value)


async def numbered(items: AsyncIterator[Chunk], after: int) -> AsyncIterator[tuple[int, Chunk]]:
    """The chunks numbered from 1, those up to ``after`` left out; the end (``[DONE]``, or a
    failure) keeps number 0 and is always sent."""
    count = 0
    async for item in items:
        if item is None or isinstance(item, Failure):
            yield 0, item
            continue
        count += 1
        if count > after:
            yield count, item


async def _sse_events(events: AsyncIterator[tuple[int, Chunk]]) -> AsyncIterator[str]:
    async for number, item in events:
        line = sse_line(item)
        yield f"id: {number}\n{line}" if number else line


def _frame(item: Chunk) -> str:
    """One WebSocket text frame: a chunk, an error object, or ``[DONE]``."""
    if item is None:
        return "[DONE]"
    if isinstance(item, Failure):
        return json.dumps(error_body(item.error))
    return json.dumps(item)
