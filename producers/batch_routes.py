"""The gateway's Files and Batches routes, in OpenAI's shape (``/v1/files``, ``/v1/batches``).

Handlers are plain functions: FastAPI runs them in its thread pool, as they read files and
use the synchronous Redis client.
"""

from __future__ import annotations

from typing import Annotated, Any

from chatq.producers.batch_service import BatchService, CreateBatch
from chatq.producers.callers import AdmittedCaller, Caller
from chatq.producers.files import FileStore
from chatq.producers.request_headers import IdempotencyKeyHeader, check_idempotency_key
from chatq.shared.errors import BatchNotFound, short
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

router = APIRouter()
uploads = APIRouter()  # the gateway gives it a body limit of its own: a file's, not a chat's


def _files(request: Request) -> FileStore:
    return request.app.state.files  # type: ignore[no-any-return]


def _batches(request: Request) -> BatchService:
    return request.app.state.batches  # type: ignore[no-any-return]


@uploads.post("/v1/files")
def upload_file(
    request: Request,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
    who: Caller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """Uploads a JSONL file of batch requests (purpose ``batch``)."""
    name = file.filename or "upload.jsonl"
    key = check_idempotency_key(idempotency_key)
    return _files(request).upload(file.file, name, purpose, who.tenant, idempotency_key=key)


@router.get("/v1/files")
def list_files(
    request: Request,
    who: Caller,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    found = _files(request).list(limit=limit, purpose=purpose, tenant=who.tenant)
    return {"object": "list", "data": found}


@router.get("/v1/files/{file_id}")
def get_file(request: Request, file_id: str, who: Caller) -> dict[str, Any]:
    return _files(request).get(file_id, who.tenant)


@router.get(
    "/v1/files/{file_id}/content",
    response_class=FileResponse,
    responses={200: {"content": {"application/jsonl": {}}, "description": "The file."}},
)
def file_content(request: Request, file_id: str, who: Caller) -> FileResponse:
    store = _files(request)
    name = store.get(file_id, who.tenant)["filename"]
    path = store.path(file_id, who.tenant)
    return FileResponse(path, media_type="application/jsonl", filename=name)


@router.delete("/v1/files/{file_id}")
def delete_file(request: Request, file_id: str, who: Caller) -> dict[str, Any]:
    return _files(request).delete(file_id, who.tenant)


@router.post("/v1/batches")
def create_batch(
    request: Request,
    body: CreateBatch,
    who: AdmittedCaller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """Starts a batch over an uploaded file; poll it with ``GET /v1/batches/{id}``."""
    key = check_idempotency_key(idempotency_key)
    return _batches(request).create(body, who.tenant, idempotency_key=key)


@router.get("/v1/batches")
def list_batches(
    request: Request,
    who: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> dict[str, Any]:
    return _batches(request).list(limit=limit, after=after, tenant=who.tenant)


@router.get("/v1/batches/{batch_id}")
def get_batch(request: Request, batch_id: str, who: Caller) -> dict[str, Any]:
    try:
        return _batches(request).get(batch_id, who.tenant)
    except BatchNotFound:
        raise _no_batch(batch_id) from None


@router.post("/v1/batches/{batch_id}/cancel")
def cancel_batch(request: Request, batch_id: str, who: Caller) -> dict[str, Any]:
    try:
        return _batches(request).cancel(batch_id, who.tenant)
    except BatchNotFound:
        raise _no_batch(batch_id) from None


def _no_batch(batch_id: str) -> BatchNotFound:
    """Not found, naming the id by a short prefix only (it came in the URL)."""
    return BatchNotFound(f"No batch with id {short(batch_id)}.", param="batch_id")
