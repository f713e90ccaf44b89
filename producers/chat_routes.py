"""``/v1/chat/completions`` and ``/v1/models``: OpenAI's wire format, every request queued."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from chatq.producers import request_headers
from chatq.producers.aio import AsyncChatqClient
from chatq.producers.callers import AdmittedCaller, Caller, Client, gateway_client
from chatq.producers.disconnects import (
    awaited_unless_left,
    cancelled_if_left,
    cancels_on_disconnect,
)
from chatq.producers.errors import error_response
from chatq.producers.jobs import error_for_result
from chatq.producers.json_response import FastJSONResponse
from chatq.producers.openai_format import (
    DONE_LINE,
    ChunkServer,
    completion,
    model_list,
    sse,
)
from chatq.shared import tracing
from chatq.shared.completion import text_completion
from chatq.shared.errors import ChatqError, error_body
from chatq.shared.jobs import ChatRequest, JobStatus
from chatq.shared.protocol import DeltaEvent, EndEvent
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

router = APIRouter()
log = logging.getLogger("chatq.gateway")


@router.get("/v1/models")
async def models(client: Client, who: Caller) -> dict[str, Any]:
    return model_list(client.deployments.aliases())


STREAM_OR_JSON = {
    200: {
        "description": "A chat.completion, or with stream=true chat.completion.chunk events.",
        "content": {"application/json": {}, "text/event-stream": {}},
    }
}


# The headers this route reads, stated in the OpenAPI document (so that they are fuzzed) but
# read from the request itself: declared parameters would cost the hot path a resolution each.
READ_HEADERS = {
    "parameters": [
        {"name": name, "in": "header", "required": False, "schema": schema}
        for name, schema in (
            (request_headers.SESSION_HEADER, request_headers.SESSION_ID_SCHEMA),
            (request_headers.IDEMPOTENCY_HEADER, request_headers.IDEMPOTENCY_KEY_SCHEMA),
            (request_headers.TRACEPARENT_HEADER, {"type": "string"}),
        )
    ]
}


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses=STREAM_OR_JSON,
    openapi_extra=READ_HEADERS,
)
async def chat_completions(
    body: ChatRequest, request: Request, who: AdmittedCaller
) -> JSONResponse | StreamingResponse:
    client = gateway_client(request)  # not a dependency: the hot path's, solved per request
    if (session := request_headers.session_id(request.headers)) and body.session_id is None:
        body.session_id = session
    submit = client.submit if body.stream else client.submit_awaited
    trace = tracing.onward(request.headers.get("traceparent"))
    idempotency_key = request_headers.idempotency_key(request.headers)
    job_id = await submit(
        request=body,
        tenant=who.tenant,
        privacy=who.privacy,
        traceparent=trace,
        idempotency_key=idempotency_key,
    )
    log.info("job %s submitted (model %s, stream=%s)", job_id, body.model, body.stream)
    created = int(time.time())
    headers = {"X-Chatq-Job-Id": job_id}
    if body.stream:
        options = (body.model_extra or {}).get("stream_options") or {}
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        server = ChunkServer(job_id, body.model, created, include_usage=include_usage)
        events = aiter(chunks(client, job_id, server))
        first = await anext(events)
        if isinstance(first, Failure):  # failed before any chunk: an error status, as upstream
            return error_response(first.error, headers)
        lines = sse_lines(_after(first, events))
        policy = client.settings.stream_disconnect
        if cancels_on_disconnect(policy, idempotency_key=idempotency_key):
            lines = cancelled_if_left(lines, partial(client.cancel, job_id))
        return StreamingResponse(lines, media_type="text/event-stream", headers=headers)
    waiting = client.result(job_id)
    if cancels_on_disconnect(client.settings.stream_disconnect, idempotency_key=idempotency_key):
        waiting = awaited_unless_left(waiting, request.receive, partial(client.cancel, job_id))
    result = await waiting
    if result.status is not JobStatus.done:
        return error_response(error_for_result(result), headers)
    return FastJSONResponse(completion(result, created), headers=headers)


@dataclass(frozen=True)
class Failure:
    """The job failed (or the wait for it did): how, as the error to send."""

    error: ChatqError


Chunk = dict[str, Any] | Failure | None  # a chunk to send, a failure, or None for [DONE]


async def sse_lines(items: AsyncIterator[Chunk]) -> AsyncIterator[str]:
    """Chunks as server-sent events: ``data: {...}``, an error object, or ``data: [DONE]``."""
    async for item in items:
        yield sse_line(item)


async def _after(first: Chunk, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    yield first
    async for item in rest:
        yield item


def sse_line(item: Chunk) -> str:
    """One server-sent event: a chunk, an error object, or ``[DONE]``."""
    if item is None:
        return DONE_LINE
    if isinstance(item, Failure):
        return sse(error_body(item.error))
    return sse(item)


async def chunks(
    client: AsyncChatqClient, job_id: str, server: ChunkServer
) -> AsyncIterator[Chunk]:
    """The chunks of a job's stream from the first, however late this starts, then None
    (``[DONE]``); a ``Failure`` instead if the job fails. An answer that was not streamed
    (cached, or of a job that did not ask to stream) is replayed as chunks at its end."""
    streamed = False
    try:
        async for event in client.events(job_id, fresh=True):
            if isinstance(event, DeltaEvent):
                streamed = True
                yield server.serve(event.chunk)
            elif isinstance(event, EndEvent):
                result = event.result
                if result.status is not JobStatus.done:
                    yield Failure(error_for_result(result))
                    return
                answer = result.completion or text_completion("")
                if not streamed:
                    for chunk in server.replay(answer):
                        yield chunk
                if (usage := server.usage(answer)) is not None:
                    yield usage
                yield None
    except ChatqError as exc:
        yield Failure(exc)
