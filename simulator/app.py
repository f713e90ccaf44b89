"""The simulator's HTTP app: OpenAI chat completions (plain, SSE and WebSocket), plus /sim/*.

Plain Starlette routes and stdlib json, so that a zero-latency simulator costs its callers
almost nothing. A chat request is logged, then checked (its shape, then its context length),
rate limited, maybe failed, answered. What an answer says is ``chatq.simulator.replies``' business,
how it looks on the wire ``chatq.simulator.wire``'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chatq.simulator.checks import check_context, check_request, parse_body
from chatq.simulator.config import SimConfig
from chatq.simulator.embeddings import EmbeddingProblem, embeddings, inputs_of
from chatq.simulator.limits import Refusal
from chatq.simulator.replies import Reply, max_tokens_of, prompt_tokens, replies_for
from chatq.simulator.state import Simulator
from chatq.simulator.wire import Stream, completion, error, stream
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

JOB_ID_HEADER = "x-chatq-job-id"
Sleep = Callable[[float], Awaitable[None]]
_FAULT_ANSWERS = {
    "500": (500, "The server had an error while processing your request (injected fault)."),
    "503": (503, "The server is overloaded, please try again later (injected fault)."),
    "timeout": (504, "The server timed out before answering (injected fault)."),
}


class StreamCut(Exception):
    """Raised on purpose to drop a connection mid-answer (the "cut" fault)."""


def create_app(
    config: SimConfig,
    clock: Callable[[], float] = time.monotonic,
    *,
    wall_clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
) -> Starlette:
    """The simulator as an ASGI app. ``clock`` drives rate limits and the request log's ``t``,
    ``wall_clock`` the ``created`` field of completions, ``sleep`` every simulated delay."""
    sim = Simulator(config, clock)

    async def screen(body: Any, headers: Mapping[str, str], now: float) -> Refused | Admitted:
        """Logs a request and runs it past the key, request, limit and fault checks, as both
        transports do: a refusal, or the admitted request's prompt size and fault (if any)."""
        key = bearer_key(headers)
        entry = sim.record(
            body, headers.get(JOB_ID_HEADER), now, key_id(key), headers.get("traceparent")
        )
        if not key_accepted(key, config):
            sim.invalid(entry)
            return Refused(401, error(BAD_KEY_MESSAGE, "invalid_request_error", "invalid_api_key"))
        problem = check_request(body, config.models)
        if problem is not None:
            sim.invalid(entry)
            return Refused(problem.status, problem.body())
        prompt = prompt_tokens(body["messages"])
        entry["prompt_tokens"] = prompt
        problem = check_context(prompt, body, config.context_window)
        if problem is not None:
            sim.invalid(entry)
            return Refused(problem.status, problem.body())
        completion_limit = (max_tokens_of(body) or config.max_reply_tokens) * (body.get("n") or 1)
        refusal = sim.limiter.admit(prompt + completion_limit, now)
        if refusal is not None:
            sim.rate_limited(entry, refusal.retry_after_s)
            return rate_limited(refusal, sim.limiter.headers(now))
        fault = sim.faults.draw()
        if fault is not None:
            sim.fault(entry, fault)
            if fault == "timeout":
                await sleep(config.hang_s)
            if fault != "cut":
                status, message = _FAULT_ANSWERS[fault]
                return Refused(status, error(message, "server_error"))
        return Admitted(prompt, fault)

    def answer(body: dict[str, Any], prompt: int) -> list[Reply]:
        return replies_for(
            body, echo=config.echo, max_reply_tokens=config.max_reply_tokens, prompt=prompt
        )

    def events(body: dict[str, Any], replies: list[Reply], created: int) -> Stream:
        """The one chunk generator behind both streaming transports."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return stream(
            replies,
            completion_id=f"chatcmpl-{uuid.uuid4().hex}",
            created=created,
            model=body["model"],
            include_usage=include_usage,
            top_logprobs=top_logprobs_of(body),
        )

    async def chat_completions(request: Request) -> Response:
        body = parse_body(await request.body())
        now = sim.clock()
        screened = await screen(body, request.headers, now)
        if isinstance(screened, Refused):
            return json_response(screened.body, screened.status, screened.headers)
        fault = screened.fault
        replies = answer(body, screened.prompt_tokens)
        created = int(wall_clock())
        headers = sim.limiter.headers(now)
        if body.get("stream"):
            sim.stats.streamed += 1
            paced = _paced(
                events(body, replies, created),
                config,
                sleep,
                cut=fault == "cut",
                done=sim.completed,
            )
            headers["cache-control"] = "no-cache"
            tracked = _generating(paced, sim.stats)
            return StreamingResponse(tracked, media_type="text/event-stream", headers=headers)
        answered = completion(
            replies,
            completion_id=f"chatcmpl-{uuid.uuid4().hex}",
            created=created,
            model=body["model"],
            top_logprobs=top_logprobs_of(body),
        )
        content = json.dumps(answered).encode()
        if fault == "cut":
            return CutResponse(content, media_type="application/json", headers=headers)
        delay_s = config.ttft_ms / 1000
        if config.tokens_per_s > 0:  # the choices are generated side by side
            delay_s += max(r.steps for r in replies) / config.tokens_per_s
        if delay_s > 0:
            await sleep(delay_s)
        sim.completed(screened.prompt_tokens, sum(r.completion_tokens for r in replies))
        return Response(content, media_type="application/json", headers=headers)

    async def chat_completions_ws(websocket: WebSocket) -> None:
        """The same chat completions over a WebSocket: the client sends the request as one
        text frame and receives each ``chat.completion.chunk`` as a frame, then ``[DONE]``.
        A refusal is one frame ``{"error": ..., "status": N, "retry_after": s}``."""
        await websocket.accept()
        try:
            body = parse_body((await websocket.receive_text()).encode())
        except WebSocketDisconnect:
            return
        now = sim.clock()
        screened = await screen(body, websocket.headers, now)
        if isinstance(screened, Refused):
            refusal = {**screened.body, "status": screened.status, "retry_after": screened.wait_s}
            await websocket.send_text(json.dumps(refusal))
            await websocket.close()
            return
        replies = answer(body, screened.prompt_tokens)
        sim.stats.streamed += 1
        planned = events(body, replies, int(wall_clock()))
        paced = _paced(planned, config, sleep, cut=screened.fault == "cut", done=sim.completed)
        try:
            async for data in _generating(paced, sim.stats):
                for event in data.split(b"\n\n"):
                    if event.startswith(b"data: "):
                        await websocket.send_text(event[6:].decode())
        except StreamCut:
            await websocket.close(code=1011, reason="injected fault: stream cut mid-way")
            return
        except WebSocketDisconnect:
            return
        await websocket.close()

    async def create_embeddings(request: Request) -> Response:
        """OpenAI's embeddings: checked, logged and rate limited as a chat is, answered with
        deterministic vectors (``chatq.simulator.embeddings``)."""
        body = parse_body(await request.body())
        now = sim.clock()
        key = bearer_key(request.headers)
        entry = sim.record(body, request.headers.get(JOB_ID_HEADER), now, key_id(key))
        if not key_accepted(key, config):
            sim.invalid(entry)
            return json_response(
                error(BAD_KEY_MESSAGE, "invalid_request_error", "invalid_api_key"), 401
            )
        try:
            items = inputs_of(body)
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise EmbeddingProblem("you must provide a model parameter", "model")
            if config.models is not None and model not in config.models:
                message = f"The model `{model}` does not exist or you do not have access to it."
                raise EmbeddingProblem(message, "model", 404)
            answer = embeddings(body, items)
        except EmbeddingProblem as problem:
            sim.invalid(entry)
            body_out = error(problem.message, "invalid_request_error")
            body_out["error"]["param"] = problem.param
            return json_response(body_out, problem.status)
        tokens = answer["usage"]["prompt_tokens"]
        refusal = sim.limiter.admit(tokens, now)
        if refusal is not None:
            sim.rate_limited(entry, refusal.retry_after_s)
            refused = rate_limited(refusal, sim.limiter.headers(now))
            return json_response(refused.body, refused.status, refused.headers)
        sim.stats.embedded += len(items)
        sim.completed(tokens, 0)
        return json_response(answer, 200, sim.limiter.headers(now))

    async def models(request: Request) -> Response:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "chatq-simulator"}
            for name in config.model_names
        ]
        return json_response({"object": "list", "data": data})

    async def stats(request: Request) -> Response:
        return json_response(sim.stats.as_dict())

    async def requests_log(request: Request) -> Response:
        raw = request.query_params.get("limit")
        try:
            limit = None if raw is None else int(raw)
        except ValueError:
            limit = -1
        if limit is not None and limit < 0:
            body = error("'limit' must be a non-negative integer.", "invalid_request_error")
            return json_response(body, 400)
        return json_response({"requests": sim.recent(limit)})

    async def reset(request: Request) -> Response:
        sim.reset()
        return json_response({"status": "reset"})

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        body = error(exc.detail, "invalid_request_error")
        return json_response(body, exc.status_code, exc.headers)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            WebSocketRoute("/v1/chat/completions", chat_completions_ws),
            Route("/v1/embeddings", create_embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/sim/stats", stats, methods=["GET"]),
            Route("/sim/requests", requests_log, methods=["GET"]),
            Route("/sim/reset", reset, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.simulator = sim
    return app


BAD_KEY_MESSAGE = "Incorrect API key provided."


def bearer_key(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    return value[7:].strip() if value.lower().startswith("bearer ") else None


def key_id(key: str | None) -> str | None:
    """A one-way name for a key, safe to log (the same as chatq's key fingerprints)."""
    return None if key is None else "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def key_accepted(key: str | None, config: SimConfig) -> bool:
    return config.api_keys is None or key in config.api_keys


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(json.dumps(data).encode(), status, headers, media_type="application/json")


def top_logprobs_of(body: Mapping[str, Any]) -> int | None:
    """None without ``logprobs``; else how many alternatives each token lists."""
    return (body.get("top_logprobs") or 0) if body.get("logprobs") else None


@dataclass(frozen=True)
class Admitted:
    """A request past every check: its prompt size, and the fault its answer is to meet."""

    prompt_tokens: int
    fault: str | None


@dataclass(frozen=True)
class Refused:
    """An error answer: status, OpenAI error body, headers, and the wait a 429 asks for."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    wait_s: float | None = None


def rate_limited(refusal: Refusal, headers: dict[str, str]) -> Refused:
    """A 429 in OpenAI's shape, saying when to come back."""
    wait = refusal.retry_after_s
    headers["retry-after"] = str(max(1, math.ceil(wait)))
    headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
    message = (
        f"Rate limit reached on {refusal.limit} per min: limit {refusal.per_minute}. "
        f"Please try again in {wait:.3f}s."
    )
    body = error(message, "rate_limit_error", "rate_limit_exceeded")
    return Refused(429, body, headers, wait)


async def _generating(events: AsyncIterator[bytes], stats: Any) -> AsyncIterator[bytes]:
    """A stream counted in ``stats.active`` while it runs; one that stopped before its end
    (its client gone, or a cut) counts in ``stats.abandoned``."""
    stats.active += 1
    finished = False
    try:
        async for event in events:
            yield event
        finished = True
    finally:
        stats.active -= 1
        if not finished:
            stats.abandoned += 1


async def _paced(
    planned: Stream,
    config: SimConfig,
    sleep: Sleep,
    *,
    cut: bool,
    done: Callable[[int, int], None],
) -> AsyncIterator[bytes]:
    """Sends stream events on the configured schedule: ``ttft_ms`` before the first, then one
    round of pieces (one per choice) every ``1/tokens_per_s`` s; with no gap between pieces,
    everything in one write. A cut stream ends, without [DONE], after the roles and half the
    pieces."""
    if config.ttft_ms > 0:
        await sleep(config.ttft_ms / 1000)
    events = planned.events[: planned.cut_at] if cut else planned.events
    if config.tokens_per_s > 0:
        gap_s = 1 / config.tokens_per_s
        for i, event in enumerate(events):
            if i in planned.gaps:
                await sleep(gap_s)
            yield event
    else:
        yield b"".join(events)
    if cut:
        raise StreamCut("injected fault: stream cut mid-way")
    done(planned.prompt_tokens, planned.completion_tokens)


class CutResponse(Response):
    """Sends the status, headers and half the body, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise StreamCut("injected fault: connection dropped mid-answer")
