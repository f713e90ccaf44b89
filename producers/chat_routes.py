"""``/v1/chat/completions`` and ``/v1/models``: OpenAI's wire format, every request queued."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from producers.aio import AsyncChatqClient
from producers.callers import AdmittedCaller, Caller, Client
from producers.errors import error_response
from producers.jobs import error_for_result
from producers.openai_format import DONE_LINE, chunk, completion, model_list, sse
from shared.errors import ChatqError, error_body
from shared.jobs import ChatRequest, JobStatus
from shared.protocol import DeltaEvent, EndEvent

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


@router.post("/v1/chat/completions", response_model=None, responses=STREAM_OR_JSON)
async def chat_completions(
    body: ChatRequest, request: Request, client: Client, who: AdmittedCaller
) -> JSONResponse | StreamingResponse:
    if (session := request.headers.get("x-session-id")) and body.session_id is None:
        body.session_id = session
    job_id = await client.submit(request=body, tenant=who.tenant, privacy=who.privacy)
    log.info("job %s submitted (model %s, stream=%s)", job_id, body.model, body.stream)
    created = int(time.time())
    if body.stream:
        options = (body.model_extra or {}).get("stream_options") or {}
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events = stream_events(client, job_id, body.model, created, include_usage)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"X-Chatq-Job-Id": job_id}
        )
    result = await client.result(job_id)
    if result.status is not JobStatus.done:
        return error_response(error_for_result(result), {"X-Chatq-Job-Id": job_id})
    return JSONResponse(completion(result, created), headers={"X-Chatq-Job-Id": job_id})


async def stream_events(
    client: AsyncChatqClient, job_id: str, model: str, created: int, include_usage: bool
) -> AsyncIterator[str]:
    """A job's events as OpenAI ``chat.completion.chunk`` SSE lines, from the first delta."""
    async for data in chunks(client, job_id, model, created, include_usage):
        yield DONE_LINE if data is None else sse(data)


async def chunks(
    client: AsyncChatqClient, job_id: str, model: str, created: int, include_usage: bool
) -> AsyncIterator[dict[str, Any] | None]:
    """The chunk objects of a job's stream, then None for the end (``[DONE]``); an error
    object instead if the job fails."""
    yield chunk(job_id, model, created, delta={"role": "assistant", "content": ""})
    try:
        async for event in client.events(job_id):
            if isinstance(event, DeltaEvent):
                yield chunk(job_id, model, created, delta={"content": event.content})
            elif isinstance(event, EndEvent):
                result = event.result
                if result.status is not JobStatus.done:
                    yield error_body(error_for_result(result))
                    return
                yield chunk(job_id, model, created, finish_reason=result.finish_reason)
                if include_usage and result.usage:
                    usage = result.usage.model_dump()
                    yield chunk(job_id, model, created, usage=usage, with_choice=False)
                yield None
    except ChatqError as exc:
        yield error_body(exc)
