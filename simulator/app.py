"""The simulator's HTTP app: OpenAI chat completions (plain and SSE), plus /sim/* introspection."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shared.errors import openai_error_body
from simulator.config import DEFAULT_MODELS, SimConfig
from simulator.faults import FaultInjector
from simulator.limits import RateLimiter
from simulator.replies import Reply, prompt_tokens, reply_for

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
JOB_ID_HEADER = "x-chatq-job-id"


class StreamCut(Exception):
    """Raised on purpose to drop a connection mid-answer (the "cut" fault)."""


class Simulator:
    """The simulator's state: limiter, fault draws, counters and the request log."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.limiter = RateLimiter(self.config.rpm, self.config.tpm, self.config.burst_s)
        self.faults = FaultInjector(
            self.config.fail_rate, self.config.faults, random.Random(self.config.seed)
        )
        self.stats: Counter[str] = Counter()
        self.log: deque[dict[str, Any]] = deque(maxlen=self.config.log_size)

    def record(self, request: Request, body: Any) -> dict[str, Any]:
        self.stats["requests"] += 1
        entry = {
            "t": self.clock(),
            "job_id": request.headers.get(JOB_ID_HEADER),
            "body": body,
            "outcome": "ok",
        }
        self.log.append(entry)
        return entry


def create_app(config: SimConfig, clock: Callable[[], float] = time.monotonic) -> Starlette:
    sim = Simulator(config, clock)

    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        entry = sim.record(request, body)
        problem = validate(body, config)
        if problem is not None:
            entry["outcome"] = "invalid"
            sim.stats["invalid"] += 1
            status, message, param, code = problem
            return _error(status, message, "invalid_request_error", param, code)
        cost = prompt_tokens(body["messages"]) + int(
            body.get("max_completion_tokens") or body.get("max_tokens") or config.max_reply_tokens
        )
        wait = sim.limiter.admit(cost, sim.clock())
        if wait > 0:
            entry["outcome"], entry["retry_after"] = "rate_limited", wait
            sim.stats["rate_limited"] += 1
            headers = {
                "retry-after": str(max(1, math.ceil(wait))),
                "retry-after-ms": str(math.ceil(wait * 1000)),
                **sim.limiter.headers(),
            }
            message = f"Rate limit reached. Please try again in {wait:.3f}s."
            return _error(429, message, "rate_limit_error", None, "rate_limit_exceeded", headers)
        fault = sim.faults.draw()
        if fault is not None:
            entry["outcome"] = f"fault:{fault}"
            sim.stats["faults"] += 1
            sim.stats[f"faults_{fault}"] += 1
        reply = reply_for(body, echo=config.echo, max_reply_tokens=config.max_reply_tokens)
        if fault in ("500", "503"):
            message = "The server had an error while processing your request (injected)."
            return _error(int(fault), message, "server_error", None, None)
        if fault == "timeout":
            await asyncio.sleep(config.hang_s)
            return _error(504, "Timed out (injected).", "server_error", None, None)
        sim.stats["prompt_tokens"] += reply.prompt_tokens
        sim.stats["completion_tokens"] += reply.completion_tokens
        headers = sim.limiter.headers()
        if body.get("stream"):
            sim.stats["streamed"] += 1
            options = body.get("stream_options") or {}
            chunks = _stream(
                body["model"], reply, config, bool(options.get("include_usage")), cut=fault == "cut"
            )
            return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)
        if fault == "cut":
            raise StreamCut("injected: connection dropped before the answer")
        await _sleep_ms(config.ttft_ms)
        if config.tokens_per_s > 0:
            await asyncio.sleep(reply.completion_tokens / config.tokens_per_s)
        sim.stats["completed"] += 1
        return Response(
            json.dumps(completion(body["model"], reply)),
            media_type="application/json",
            headers=headers,
        )

    async def models(request: Request) -> JSONResponse:
        names = config.models or DEFAULT_MODELS
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "simulator"} for m in names]
        return JSONResponse({"object": "list", "data": data})

    async def stats(request: Request) -> JSONResponse:
        keys = (
            "requests",
            "rate_limited",
            "faults",
            "completed",
            "streamed",
            "invalid",
            "prompt_tokens",
            "completion_tokens",
        )
        out = {k: sim.stats.get(k, 0) for k in keys}
        out.update({k: v for k, v in sim.stats.items() if k.startswith("faults_")})
        return JSONResponse(out)

    async def requests_log(request: Request) -> JSONResponse:
        limit = int(request.query_params.get("limit", len(sim.log)))
        entries = list(sim.log)[-limit:] if limit > 0 else []
        return JSONResponse({"requests": entries})

    async def reset(request: Request) -> JSONResponse:
        sim.reset()
        return JSONResponse({"status": "reset"})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models),
            Route("/sim/stats", stats),
            Route("/sim/requests", requests_log),
            Route("/sim/reset", reset, methods=["POST"]),
            Route("/health", health),
        ]
    )
    app.state.simulator = sim
    return app


def validate(body: Any, config: SimConfig) -> tuple[int, str, str | None, str | None] | None:
    """(status, message, param, code) of the first problem with a request, or None."""
    if not isinstance(body, dict):
        return 400, "We could not parse the JSON body of your request.", None, None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return 400, "you must provide a model parameter", "model", None
    if config.models is not None and model not in config.models:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return 404, message, "model", "model_not_found"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, "'messages' must be a non-empty array", "messages", None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return 400, f"messages[{i}].role must be one of {sorted(ROLES)}", "messages", None
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            return 400, f"'{name}' must be an integer of at least 1", name, None
    return None


def completion(model: str, reply: Reply) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": reply.usage(),
    }


async def _stream(
    model: str, reply: Reply, config: SimConfig, include_usage: bool, *, cut: bool
) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]

    yield event(choice({"role": "assistant", "content": ""}))
    await _sleep_ms(config.ttft_ms)
    gap = 1.0 / config.tokens_per_s if config.tokens_per_s > 0 else 0.0
    stop_at = len(reply.pieces) // 2 if cut else None
    for i, piece in enumerate(reply.pieces):
        if i == stop_at:
            raise StreamCut("injected: stream cut mid-way")
        if i and gap:
            await asyncio.sleep(gap)
        yield event(choice({"content": piece}))
    if cut:
        raise StreamCut("injected: stream cut mid-way")
    yield event(choice({}, reply.finish_reason))
    if include_usage:
        yield event([], usage=reply.usage())
    yield b"data: [DONE]\n\n"


async def _sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


def _error(
    status: int,
    message: str,
    error_type: str,
    param: str | None,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = openai_error_body(message, error_type, param=param, code=code)
    return JSONResponse(body, status_code=status, headers=headers)
