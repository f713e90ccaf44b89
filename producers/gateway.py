"""The HTTP gateway: OpenAI's wire format, every request through the queue.

Run it with ``chatq gateway`` (uvicorn, factory ``chatq.producers.gateway:create_app``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chatq.producers import (
    batch_routes,
    chat_routes,
    embedding_routes,
    job_routes,
    metrics_route,
    response_routes,
    session_routes,
)
from chatq.producers.aio import AsyncChatqClient
from chatq.producers.auth import Authenticator
from chatq.producers.batch_service import BatchService
from chatq.producers.body_guard import BodyGuard
from chatq.producers.errors import ERROR_RESPONSES, install_error_handlers
from chatq.producers.files import FileStore
from chatq.producers.json_response import FastJSONResponse
from chatq.producers.metrics_route import build_registry
from chatq.producers.request_ids import RequestIds
from chatq.producers.request_spans import RequestSpans
from chatq.shared import tracing
from chatq.shared.logs import configure_logging
from chatq.shared.redis_clients import sync_client
from chatq.shared.sessions import SessionStore, UserStore
from chatq.shared.settings import Settings, get_settings
from fastapi import FastAPI, Request

log = logging.getLogger("chatq.gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = client = AsyncChatqClient(settings)
        app.state.authenticator = Authenticator(settings, client.store.redis)
        if not settings.auth_required:
            log.warning(
                "AUTHENTICATION IS OFF: anyone who can reach this gateway may use it. "
                "Set CHATQ_AUTH_REQUIRED=true and create keys with `chatq keys create`."
            )
        redis = sync_client(settings.effective_redis_url)
        app.state.files = FileStore(
            redis,
            settings.effective_files_dir,
            max_bytes=settings.max_file_bytes,
            max_lines=settings.max_batch_lines,
        )
        app.state.sessions = SessionStore(redis, settings)
        app.state.users = UserStore(redis)
        app.state.batches = BatchService(settings, redis, app.state.files)
        app.state.batches.start()
        app.state.metrics = build_registry(redis, settings)
        yield
        app.state.batches.stop()
        redis.close()
        await client.aclose()

    app = FastAPI(
        title="chatq gateway",
        version="0.1.0",
        description="OpenAI-compatible chat completions, served through a Celery queue on Redis.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        default_response_class=FastJSONResponse,
    )
    app.add_middleware(RequestIds)
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.max_request_bytes,
        upload_max_bytes=settings.max_file_bytes,
        timeout_s=settings.body_read_timeout_s,
    )
    if tracing.configure("chatq-gateway"):
        app.add_middleware(RequestSpans)  # outermost: the span holds the whole request
    install_error_handlers(app)
    app.include_router(chat_routes.router)
    app.include_router(job_routes.router)
    app.include_router(response_routes.router)
    app.include_router(embedding_routes.router)
    app.include_router(batch_routes.router)
    app.include_router(batch_routes.uploads)
    app.include_router(session_routes.router)
    app.include_router(metrics_route.router)

    @app.get("/health")
    async def health(request: Request) -> dict[str, str]:
        await request.app.state.client.store.redis.ping()
        return {"status": "ok"}

    return app
