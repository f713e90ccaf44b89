"""chatq errors as HTTP responses, in OpenAI's error shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from producers.jobs import describe_validation_errors
from shared.errors import ChatqError, error_body, http_status_and_type, openai_error_body

log = logging.getLogger("chatq.gateway")


def error_response(exc: ChatqError, headers: dict[str, str] | None = None) -> JSONResponse:
    status, _ = http_status_and_type(exc)
    headers = dict(headers or {})
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(exc), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChatqError, _chatq_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _redis_error)  # type: ignore[arg-type]


async def _chatq_error(request: Request, exc: ChatqError) -> JSONResponse:
    return error_response(exc)


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
