"""chatq errors as HTTP responses, in OpenAI's error shape."""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from chatq.producers.jobs import describe_validation_errors
from chatq.shared.errors import (
    SHORT_ECHO_CHARS,
    ChatqError,
    InvalidRequest,
    error_body,
    http_status_and_type,
    openai_error_body,
    short,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger("chatq.gateway")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error shape, which every error response of the gateway has."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in {
        400: "The request is invalid: the message says what to fix.",
        401: "No valid API key or token.",
        404: "Not found (or not the caller's).",
        408: "The request body stalled.",
        409: "Conflicts with the job's state.",
        413: "The request body is larger than allowed.",
        429: "Over a quota or rate limit; see Retry-After.",
        500: "An internal error.",
        502: "The provider failed.",
        503: "The queue or provider is unavailable; see Retry-After.",
        504: "Timed out waiting.",
    }.items()
}


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
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ChatqError, _chatq_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _redis_error)  # type: ignore[arg-type]
    app.add_exception_handler(orjson.JSONEncodeError, _unencodable)  # type: ignore[arg-type]
    app.add_exception_handler(UnicodeEncodeError, _unencodable)  # type: ignore[arg-type]
    app.add_exception_handler(PydanticSerializationError, _unencodable)  # type: ignore[arg-type]


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own refusals (unknown route, wrong method, unparsable body) in OpenAI's shape;
    a 405 lists every method the path takes."""
    headers = dict(exc.headers or {})
    path = _shown_path(request.url.path)
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(sorted(_methods_for(request)))
        message = f"{request.method} is not allowed on {path}."
    elif exc.status_code == 404:
        message = f"No route {request.method} {path}."
    else:
        message = str(exc.detail)
    error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
    code = {413: "request_too_large", 408: "request_timeout"}.get(exc.status_code)
    return JSONResponse(
        openai_error_body(message, error_type, code=code),
        status_code=exc.status_code,
        headers=headers,
    )


SHOWN_PATH_CHARS = 40


def _shown_path(path: str) -> str:
    """A path as a message may show it: whole if short and plain, else its start."""
    plain = len(path) <= SHOWN_PATH_CHARS and path.isprintable()
    return path if plain else short(path, SHOWN_PATH_CHARS)


def _methods_for(request: Request) -> set[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return methods


async def _unencodable(request: Request, exc: Exception) -> JSONResponse:
    """Text JSON cannot carry (a lone surrogate such as ``\\ud800``), refused as sent: a
    400 before anything is queued, not a plain-text 500."""
    if isinstance(exc, UnicodeEncodeError) or "surrogates" in str(exc) or "UTF-8" in str(exc):
        return error_response(
            InvalidRequest(
                "The request holds text that is not valid Unicode (a lone surrogate, such as "
                "\\ud800): send UTF-8 text only."
            )
        )
    log.exception("a response could not be encoded")
    return JSONResponse(
        openai_error_body("The server could not encode its answer.", "server_error"),
        status_code=500,
    )


async def _chatq_error(request: Request, exc: ChatqError) -> JSONResponse:
    return error_response(exc)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        message = "We could not parse the JSON body of your request. Send valid JSON."
        return JSONResponse(openai_error_body(message, "invalid_request_error"), status_code=400)
    errors = [shown(e) for e in errors]
    message = describe_validation_errors(errors)
    param = _param(errors[0]) if errors else None
    return JSONResponse(
        openai_error_body(message, "invalid_request_error", param=param or None), status_code=400
    )


PARAMETER_KINDS = frozenset({"body", "header", "query", "path", "cookie"})


def _param(error: dict[str, Any]) -> str:
    """The parameter an error is about: where a model's own check says (``ctx.param``),
    else its location."""
    said = (error.get("ctx") or {}).get("param")
    return said if isinstance(said, str) else ".".join(str(p) for p in error["loc"])


def shown(error: dict[str, Any]) -> dict[str, Any]:
    """A validation error as a message may show it: where, named as the caller sent it (a
    header by its name, not ``header.X-Session-Id``), with no more than a short prefix of a
    value the caller sent, whether a dict key on the way or the input itself."""
    loc = tuple(error["loc"])
    if loc and loc[0] in PARAMETER_KINDS:
        loc = loc[1:]
    loc = tuple(_shown_part(part) for part in loc)
    message = str(error["msg"])
    value = error.get("input")
    if isinstance(value, str) and len(value) > SHORT_ECHO_CHARS and value in message:
        message = message.replace(value, short(value))
    return {**error, "loc": loc, "msg": message}


NAME = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,40}$")  # a field's name, or a key shown whole


def _shown_part(part: object) -> object:
    return short(part) if isinstance(part, str) and not NAME.match(part) else part


async def _redis_error(request: Request, exc: RedisError) -> JSONResponse:
    log.error("redis unavailable: %s", exc)
    body = openai_error_body(
        "The job queue is unavailable right now; nothing was enqueued. Retry shortly.",
        "server_error",
        code="queue_unavailable",
    )
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
