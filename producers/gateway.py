"""The HTTP gateway: OpenAI's chat completions wire format, every request through the queue.

Run it with ``chatq gateway`` (uvicorn, factory ``producers.gateway:create_app``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from redis import Redis
from redis.exceptions import RedisError

from producers import batch_routes
from producers.aio import AsyncChatqClient
from producers.batches import BatchService
from producers.files import FileStore
from producers.jobs import describe_validation_errors, error_for_result
from producers.openai_format import DONE_LINE, chunk, completion, model_list, sse
from shared.errors import (
    ChatqError,
    error_body,
    http_status_and_type,
    openai_error_body,
)
from shared.jobs import ChatRequest, ChatResult, JobStatus
from shared.protocol import DeltaEvent, EndEvent
from shared.settings import Settings, get_settings

log = logging.getLogger("chatq.gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = AsyncChatqClient(settings)
        redis = Redis.from_url(settings.effective_redis_url, decode_responses=True)
        app.state.files = FileStore(
            redis, settings.effective_files_dir, max_bytes=settings.max_file_bytes
        )
        app.state.batches = BatchService(settings, redis, app.state.files)
        app.state.batches.start()
        yield
        app.state.batches.stop()
        redis.close()
        await app.state.client.aclose()

    app = FastAPI(
        title="chatq gateway",
        version="0.1.0",
        description="OpenAI-compatible chat completions, served through a Celery queue on Redis.",
        lifespan=lifespan,
    )
    app.add_exception_handler(ChatqError, _chatq_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _redis_error)  # type: ignore[arg-type]
    app.include_router(batch_routes.router)

    @app.get("/health")
    async def health(request: Request) -> dict[str, str]:
        await _client(request).store.redis.ping()
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        return model_list(_client(request).deployments.aliases())

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(
        body: ChatRequest, request: Request
    ) -> JSONResponse | StreamingResponse:
        if (session := request.headers.get("x-session-id")) and body.session_id is None:
            body.session_id = session
        client = _client(request)
        job_id = await client.submit(request=body)
        created = int(time.time())
        if body.stream:
            options = (body.model_extra or {}).get("stream_options") or {}
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            events = _stream_events(client, job_id, body.model, created, include_usage)
            return StreamingResponse(
                events, media_type="text/event-stream", headers={"X-Chatq-Job-Id": job_id}
            )
        result = await client.result(job_id)
        if result.status is not JobStatus.done:
            return _failed_job_response(result)
        return JSONResponse(completion(result, created), headers={"X-Chatq-Job-Id": job_id})

    return app


def _client(request: Request) -> AsyncChatqClient:
    return request.app.state.client  # type: ignore[no-any-return]


async def _stream_events(
    client: AsyncChatqClient, job_id: str, model: str, created: int, include_usage: bool
) -> AsyncIterator[str]:
    yield sse(chunk(job_id, model, created, delta={"role": "assistant", "content": ""}))
    try:
        async for event in client.events(job_id):
            if isinstance(event, DeltaEvent):
                yield sse(chunk(job_id, model, created, delta={"content": event.content}))
            elif isinstance(event, EndEvent):
                result = event.result
                if result.status is not JobStatus.done:
                    yield sse(error_body(error_for_result(result)))
                    return
                yield sse(chunk(job_id, model, created, finish_reason=result.finish_reason))
                if include_usage and result.usage:
                    usage = result.usage.model_dump()
                    yield sse(chunk(job_id, model, created, usage=usage, with_choice=False))
                yield DONE_LINE
    except ChatqError as exc:
        yield sse(error_body(exc))


def _failed_job_response(result: ChatResult) -> JSONResponse:
    return _error_response(error_for_result(result), {"X-Chatq-Job-Id": result.job_id})


def _error_response(exc: ChatqError, headers: dict[str, str] | None = None) -> JSONResponse:
    status, _ = http_status_and_type(exc)
    headers = dict(headers or {})
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return JSONResponse(error_body(exc), status_code=status, headers=headers)


async def _chatq_error(request: Request, exc: ChatqError) -> JSONResponse:
    return _error_response(exc)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        message = "We could not parse the JSON body of your request. Send valid JSON."
        return JSONResponse(openai_error_body(message, "invalid_request_error"), status_code=400)
    message = describe_validation_errors(errors)
    param = ".".join(str(p) for p in errors[0]["loc"] if p != "body") if errors else None
    return JSONResponse(
        openai_error_body(message, "invalid_request_error", param=param or None), status_code=400
    )


async def _redis_error(request: Request, exc: RedisError) -> JSONResponse:
    log.error("redis unavailable: %s", exc)
    body = openai_error_body(
        "The job queue is unavailable right now; nothing was enqueued. Retry shortly.",
        "server_error",
        code="queue_unavailable",
    )
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
