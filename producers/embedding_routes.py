"""``/v1/embeddings``: OpenAI's embeddings, each request a job through the queue, so the
scheduler, limits, quotas and tenancy apply; identical requests share one call and the
answer cache (embeddings are deterministic)."""

from __future__ import annotations

from functools import partial

from chatq.producers.callers import AdmittedCaller, gateway_client
from chatq.producers.disconnects import awaited_unless_left, cancels_on_disconnect
from chatq.producers.embeddings_format import (
    EmbeddingsRequest,
    embedding_input,
    embeddings_answer,
    stand_in_request,
)
from chatq.producers.errors import error_response
from chatq.producers.jobs import error_for_result
from chatq.producers.json_response import FastJSONResponse
from chatq.shared import tracing
from chatq.shared.jobs import JobStatus
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.post("/v1/embeddings", response_model=None)
async def create_embeddings(
    body: EmbeddingsRequest, request: Request, who: AdmittedCaller
) -> JSONResponse:
    """A vector for each input, in order (``encoding_format`` float or base64)."""
    client = gateway_client(request)
    inputs = embedding_input(body)
    job_id = await client.submit_awaited(
        request=stand_in_request(body, inputs),
        embedding=inputs,
        tenant=who.tenant,
        privacy=who.privacy,
        traceparent=tracing.onward(request.headers.get("traceparent")),
    )
    waiting = client.result(job_id)
    if cancels_on_disconnect(client.settings.stream_disconnect, idempotency_key=None):
        waiting = awaited_unless_left(waiting, request.receive, partial(client.cancel, job_id))
    result = await waiting
    if result.status is not JobStatus.done or result.completion is None:
        return error_response(error_for_result(result), {"X-Chatq-Job-Id": job_id})
    answer = embeddings_answer(result.completion.wire(), body.model, body.encoding_format)
    return FastJSONResponse(answer, headers={"X-Chatq-Job-Id": job_id})
