"""``/v1/responses``: OpenAI's Responses API, each response a chat job (so any chat
completions provider serves it, under the same scheduler, limits and tenancy).

``background: true`` answers at once with ``status: queued``; ``GET /v1/responses/{id}``
polls it (``?stream=true&starting_after=N`` resumes its events), ``POST .../cancel`` stops
it. ``previous_response_id`` continues a stored response's conversation on a session of the
new response's own, so two continuations of one response never mix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import orjson
from chatq.producers.aio import AsyncChatqClient
from chatq.producers.callers import AdmittedCaller, Caller, Client, gateway_client
from chatq.producers.chat_routes import STREAM_OR_JSON
from chatq.producers.disconnects import (
    awaited_unless_left,
    cancelled_if_left,
    cancels_on_disconnect,
)
from chatq.producers.errors import error_response
from chatq.producers.jobs import error_for_result
from chatq.producers.json_response import FastJSONResponse
from chatq.producers.response_events import ResponseEvents
from chatq.producers.response_store import ResponseStore
from chatq.producers.responses_format import (
    ResponsesRequest,
    chat_request,
    input_items,
    new_response_id,
    response_object,
    response_status,
)
from chatq.shared import tracing
from chatq.shared.completion import chunks_of
from chatq.shared.errors import ChatqError, InvalidRequest, error_body
from chatq.shared.jobs import JobStatus
from chatq.shared.protocol import DeltaEvent, EndEvent
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

router = APIRouter()
log = logging.getLogger("chatq.gateway")
EVENTS = {200: {"content": {"text/event-stream": {}}, "description": "Responses events."}}


def _stored(client: AsyncChatqClient) -> ResponseStore:
    return ResponseStore(client.store.redis, client.settings.result_ttl_s)


@router.post("/v1/responses", response_model=None, responses=STREAM_OR_JSON)
async def create_response(
    body: ResponsesRequest, request: Request, who: AdmittedCaller
) -> JSONResponse | StreamingResponse:
    """A model response, as OpenAI's Responses API gives it: plain, streamed as events, or
    queued in the background."""
    client = gateway_client(request)
    if body.background and not body.store:
        raise InvalidRequest(
            "Background mode needs store: true, as its response is fetched later.",
            param="background",
        )
    stored = _stored(client)
    response_id, created = new_response_id(), time.time()
    session_id = response_id if body.store else None
    history: list[dict[str, Any]] = []
    if (previous := body.previous_response_id) is not None:
        await stored.load(who.tenant, previous, param="previous_response_id")
        if session_id is not None:
            await client.branch_session(who.tenant, previous, session_id)
        else:  # nothing kept of this one: the conversation so far goes whole
            turns = await client.session_messages(who.tenant, previous)
            history = [m.model_dump(mode="json", exclude_unset=True) for m in turns]
    chat = chat_request(body, session_id=session_id, history=history)
    waits = not (body.stream or body.background)
    submit = client.submit_awaited if waits else client.submit
    await submit(
        request=chat,
        job_id=response_id,
        tenant=who.tenant,
        privacy=who.privacy,
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
        traceparent=tracing.onward(request.headers.get("traceparent")),
    )
    if body.store:  # once accepted: a refused request (an unknown model, say) leaves nothing
        await stored.save(who.tenant, response_id, body, created)
    log.info("response %s submitted (model %s)", response_id, body.model)
    if body.stream:
        events = response_events(client, response_id, body, created, fresh=True)
        lines = _sse(events)
        if not body.background and cancels_on_disconnect(
            client.settings.stream_disconnect, idempotency_key=None
        ):
            lines = cancelled_if_left(lines, partial(client.cancel, response_id))
        return StreamingResponse(lines, media_type="text/event-stream")
    if body.background:
        return FastJSONResponse(
            response_object(response_id, body, status="queued", created_at=created)
        )
    waiting = client.result(response_id)
    if cancels_on_disconnect(client.settings.stream_disconnect, idempotency_key=None):
        waiting = awaited_unless_left(waiting, request.receive, partial(client.cancel, response_id))
    result = await waiting
    if result.status is not JobStatus.done:
        return error_response(error_for_result(result))
    status = response_status(result.status, result.completion)
    answer = response_object(
        response_id, body, status=status, created_at=created, completion=result.completion
    )
    return FastJSONResponse(answer)


@router.get("/v1/responses/{response_id}", response_model=None, responses=EVENTS)
async def get_response(
    response_id: str,
    client: Client,
    who: Caller,
    stream: bool = False,
    starting_after: Annotated[
        int | None, Query(ge=-1, le=10**9, description="Resume after this sequence_number.")
    ] = None,
) -> JSONResponse | StreamingResponse:
    """A stored response as it stands; with ``stream=true``, its events (after
    ``starting_after``), however late the caller comes."""
    stored = await _stored(client).load(who.tenant, response_id, param="response_id")
    if stream:
        events = response_events(
            client,
            response_id,
            stored.request,
            stored.created_at,
            fresh=False,
            after=-1 if starting_after is None else starting_after,
        )
        return StreamingResponse(_sse(events), media_type="text/event-stream")
    return FastJSONResponse(await _current(client, response_id, stored.request, stored.created_at))


@router.get("/v1/responses/{response_id}/input_items", response_model=None)
async def list_input_items(response_id: str, client: Client, who: Caller) -> JSONResponse:
    """The items a stored response was given, in order."""
    stored = await _stored(client).load(who.tenant, response_id, param="response_id")
    items = input_items(response_id, stored.request.input)
    return FastJSONResponse(
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": False,
        }
    )


@router.post("/v1/responses/{response_id}/cancel", response_model=None)
async def cancel_response(response_id: str, client: Client, who: Caller) -> JSONResponse:
    """Stops a response that has not ended (its provider call too); either way, returns how
    it stands."""
    stored = await _stored(client).load(who.tenant, response_id, param="response_id")
    await client.cancel(response_id)
    return FastJSONResponse(await _current(client, response_id, stored.request, stored.created_at))


@router.delete("/v1/responses/{response_id}", response_model=None)
async def delete_response(response_id: str, client: Client, who: Caller) -> JSONResponse:
    """Forgets a stored response (cancelling it if it still runs)."""
    responses = _stored(client)
    await responses.load(who.tenant, response_id, param="response_id")
    await client.cancel(response_id)
    await responses.delete(who.tenant, response_id)
    return FastJSONResponse({"id": response_id, "object": "response", "deleted": True})


async def _current(
    client: AsyncChatqClient, response_id: str, request: ResponsesRequest, created_at: float
) -> dict[str, Any]:
    record = await client.status(response_id)
    result = record.final_result
    completion = result.completion if result is not None else None
    return response_object(
        response_id,
        request,
        status=response_status(record.status, completion),
        created_at=created_at,
        completion=completion,
        error=result.error if result is not None else None,
    )


async def response_events(
    client: AsyncChatqClient,
    response_id: str,
    request: ResponsesRequest,
    created_at: float,
    *,
    fresh: bool,
    after: int = -1,
) -> AsyncIterator[dict[str, Any]]:
    """The response's events numbered after ``after``, from its job's stream."""
    builder = ResponseEvents(response_id, request, created_at)

    def unseen(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["sequence_number"] > after]

    for event in unseen(builder.start("queued" if request.background else "in_progress")):
        yield event
    streamed = False
    try:
        async for item in client.events(response_id, fresh=fresh):
            if isinstance(item, DeltaEvent):
                streamed = True
                for event in unseen(builder.chunk(item.chunk)):
                    yield event
            elif isinstance(item, EndEvent):
                if not streamed and item.result.completion is not None:
                    for chunk in chunks_of(item.result.completion):  # a cached answer, say
                        for event in unseen(builder.chunk(chunk)):
                            yield event
                for event in unseen(builder.end(item.result)):
                    yield event
                return
    except ChatqError as exc:
        said = {k: v for k, v in error_body(exc)["error"].items() if k != "type"}
        yield {"type": "error", "sequence_number": builder.sequence, **said}


async def _sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    async for event in events:
        yield f"event: {event['type']}\ndata: {orjson.dumps(event).decode()}\n\n"
