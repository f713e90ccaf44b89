"""Bulk offline batches: OpenAI Batch API JSONL in, JSONL out, through the bulk queue.

Input lines are ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``, or
with ``"url": "/v1/responses"`` a Responses request (one endpoint per batch, as OpenAI's).
Output lines follow OpenAI's batch output (``id``, ``custom_id``, ``response`` {``status_code``,
``request_id``, ``body``}, ``error``); failed requests and unreadable lines go to an error file,
unreadable ones with their line number. Input and output are streamed with a bounded window of
jobs in flight, so memory stays flat. A job's id derives from the batch and the ``custom_id``, and
submits are idempotent: running the same batch again after a crash sends only what is missing
and writes only the ``custom_id``s the output does not have yet.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from chatq.producers.batch_state import BatchStore
from chatq.producers.client import ChatqClient
from chatq.producers.embeddings_format import (
    EmbeddingsRequest,
    embedding_input,
    embeddings_answer,
    stand_in_request,
)
from chatq.producers.jobs import describe_validation_errors, error_for_result
from chatq.producers.openai_format import completion
from chatq.producers.responses_format import (
    RESPONSE_PREFIX,
    ResponsesRequest,
    chat_request,
    response_object,
    response_status,
)
from chatq.shared import tracing
from chatq.shared.errors import (
    ChatqError,
    InvalidRequest,
    JobTimeout,
    error_body,
    http_status_and_type,
)
from chatq.shared.jobs import ChatRequest, ChatResult, EmbeddingInput, JobStatus, Priority
from pydantic import ValidationError

CHAT_URL = "/v1/chat/completions"
RESPONSES_URL = "/v1/responses"
EMBEDDINGS_URL = "/v1/embeddings"
ENDPOINTS = (CHAT_URL, RESPONSES_URL, EMBEDDINGS_URL)
DEFAULT_WINDOW = 500
CANCEL_CHECK_S = 0.5  # while a line is awaited, how often a cancel of the batch is looked for


def batch_id_for(input_path: Path) -> str:
    """A stable id for a batch file: the same file, run again, is the same batch."""
    resolved = str(input_path.resolve()).encode()
    return "b" + hashlib.blake2b(resolved, digest_size=8).hexdigest()


def endpoint_of(input_path: Path) -> str:
    """The endpoint a batch file's lines ask for, as its first line says (chat completions if
    it says none it knows): every line of a batch asks the same one."""
    with input_path.open() as lines:
        for text in lines:
            if text.strip():
                try:
                    url = json.loads(text).get("url")
                except (ValueError, AttributeError):
                    return CHAT_URL
                return url if url in ENDPOINTS else CHAT_URL
    return CHAT_URL


def job_id_for(batch_id: str, custom_id: str) -> str:
    digest = hashlib.blake2b(custom_id.encode(), digest_size=12).hexdigest()
    return f"job_{batch_id}_{digest}"


@dataclass
class BadLine:
    line: int
    message: str
    custom_id: str | None = None


@dataclass
class Request:
    line: int
    custom_id: str
    body: ChatRequest
    responses: ResponsesRequest | None = None  # a /v1/responses line's request, as sent
    embeddings: EmbeddingsRequest | None = None  # a /v1/embeddings line's request, as sent
    embedding: EmbeddingInput | None = None  # and its inputs, as its job sends them


def parse_line(
    number: int, text: str, seen: set[str], endpoint: str = CHAT_URL
) -> Request | BadLine | None:
    """One input line as a request to ``endpoint``, or why it cannot be one (None for a
    blank line)."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        return BadLine(number, f"not valid JSON: {exc}")
    if not isinstance(data, dict):
        return BadLine(number, "a line must be a JSON object")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return BadLine(number, "missing 'custom_id' (a non-empty string)")
    if custom_id in seen:
        return BadLine(number, f"duplicate custom_id '{custom_id}'", custom_id)
    seen.add(custom_id)
    if data.get("url", endpoint) != endpoint or data.get("method", "POST") != "POST":
        return BadLine(number, f"this batch's lines are POST {endpoint}", custom_id)
    try:
        if endpoint == RESPONSES_URL:
            asked = ResponsesRequest.model_validate(data.get("body") or {})
            chat = chat_request(asked, session_id=None)
            return Request(number, custom_id, _bulk(chat), asked)
        if endpoint == EMBEDDINGS_URL:
            wanted = EmbeddingsRequest.model_validate(data.get("body") or {})
            inputs = embedding_input(wanted)
            stand_in = _bulk(stand_in_request(wanted, inputs))
            return Request(number, custom_id, stand_in, embeddings=wanted, embedding=inputs)
        body = ChatRequest.model_validate({**(data.get("body") or {}), "priority": Priority.bulk})
    except ValidationError as exc:
        return BadLine(number, describe_validation_errors(exc.errors()), custom_id)
    except InvalidRequest as exc:
        return BadLine(number, f"{exc.param}: {exc.message}", custom_id)
    return Request(number, custom_id, body)


def _bulk(request: ChatRequest) -> ChatRequest:
    return request.model_copy(update={"priority": Priority.bulk})


def output_line(custom_id: str, result: ChatResult, item: Request | None = None) -> dict[str, Any]:
    """A line of the output (or error) file; its body in the shape of the line's endpoint
    (``item``'s: a chat completion by default)."""
    responses = item.responses if item is not None else None
    embeddings = item.embeddings if item is not None else None
    if result.status is JobStatus.done:
        finished = result.timings.finished_at or time.time()
        if embeddings is not None and result.completion is not None:
            wire = result.completion.wire()
            body = embeddings_answer(wire, embeddings.model, embeddings.encoding_format)
        elif responses is not None:
            response_id = RESPONSE_PREFIX + result.job_id.removeprefix("job_")
            body = response_object(
                response_id,
                responses,
                status=response_status(result.status, result.completion),
                created_at=result.timings.created_at or finished,
                completion=result.completion,
            )
        else:
            body = completion(result, created=int(finished))
        response = {"status_code": 200, "request_id": result.job_id, "body": body}
        return {
            "id": f"batch_req_{result.job_id}",
            "custom_id": custom_id,
            "response": response,
            "error": None,
        }
    error = error_for_result(result)
    status, _ = http_status_and_type(error)
    body = error_body(error)
    response = {"status_code": status, "request_id": result.job_id, "body": body}
    return {
        "id": f"batch_req_{result.job_id}",
        "custom_id": custom_id,
        "response": response,
        "error": {"code": error.code, "message": error.message},
    }


def bad_line_record(bad: BadLine) -> dict[str, Any]:
    return {
        "id": None,
        "custom_id": bad.custom_id,
        "line": bad.line,
        "response": None,
        "error": {"code": "invalid_line", "message": f"line {bad.line}: {bad.message}"},
    }


def already_written(*paths: Path) -> tuple[set[str], set[int]]:
    """custom_ids and bad line numbers a previous run wrote; mends a torn last line."""
    custom_ids: set[str] = set()
    lines: set[int] = set()
    for path in paths:
        if not path.exists():
            continue
        _drop_torn_tail(path)
        with path.open() as handle:
            for text in handle:
                record = json.loads(text)
                if record.get("line") is not None:
                    lines.add(int(record["line"]))
                elif record.get("custom_id"):
                    custom_ids.add(record["custom_id"])
    return custom_ids, lines


def _drop_torn_tail(path: Path) -> None:
    """A run killed mid-write may leave half a line: cut it, it will be written again."""
    with path.open("rb+") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        position = size - 1
        while position > 0:
            handle.seek(position - 1)
            if handle.read(1) == b"\n":
                break
            position -= 1
        handle.truncate(position)


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    invalid: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)


class BatchRunner:
    """Runs one batch file to the end, resumably."""

    def __init__(
        self,
        client: ChatqClient,
        input_path: Path,
        output_path: Path,
        error_path: Path | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        on_progress: Callable[[Progress], None] | None = None,
        batch_id: str | None = None,
        record_end: bool = True,
        tenant: str | None = None,
        privacy: bool = True,
        expires_at: float | None = None,
        traceparent: str | None = None,
        endpoint: str = CHAT_URL,
    ):
        self.client = client
        self.input_path = input_path
        self.output_path = output_path
        self.error_path = error_path or output_path.with_name(output_path.stem + ".errors.jsonl")
        self.window = window
        self.on_progress = on_progress or (lambda progress: None)
        self.batch_id = batch_id or batch_id_for(input_path)
        self.record_end = record_end  # else the caller writes the final status
        self.tenant = tenant  # whose quota and privacy setting the jobs follow
        self.privacy = privacy
        self.expires_at = expires_at  # Unix time; lines not done by then fail as batch_expired
        self.expired = False  # set once a line expired
        self.traceparent = traceparent  # the trace the batch was created in, if traced
        self.endpoint = endpoint  # what every line asks: chat completions, or responses
        self.batches = BatchStore(client.store.redis)
        self._in_flight: set[str] = set()  # the jobs of lines submitted, not yet collected

    def run(self) -> Progress:
        """Submits every line not yet answered and writes the answers as they end; with
        tracing on, the lines' jobs are children of the batch's span."""
        attributes = {"chatq.batch.id": self.batch_id}
        with tracing.span("chatq.batch", attributes, parent=self.traceparent):
            return self._run_lines()

    def _run_lines(self) -> Progress:
        written, bad_lines = already_written(self.output_path, self.error_path)
        progress = Progress(total=_count_lines(self.input_path))
        self.batches.start(self.batch_id, str(self.input_path), progress.total)
        pending: deque[Request] = deque()
        with self.output_path.open("a") as out, self.error_path.open("a") as errors:
            for item in self._requests(progress, written, bad_lines, errors):
                if self._cancelled():
                    break
                if self._past_expiry():
                    self._expire(item, errors, progress)
                    continue
                job_id = job_id_for(self.batch_id, item.custom_id)
                self.client.submit(
                    request=self._fair_within_tenant(item.body),
                    embedding=item.embedding,
                    job_id=job_id,
                    resend_queued=True,
                    tenant=self.tenant,
                    privacy=self.privacy,
                )
                pending.append(item)
                self._in_flight.add(job_id)
                if len(pending) >= self.window:
                    self._collect(pending.popleft(), out, errors, progress)
            while pending:
                item = pending.popleft()
                job_id = job_id_for(self.batch_id, item.custom_id)
                if self._cancelled():
                    self.client.cancel(job_id)
                elif self._past_expiry() and self.client.cancel(job_id):
                    self._expire(item, errors, progress)
                    continue
                self._collect(item, out, errors, progress)
        self._save(progress)
        if self.record_end:
            self.batches.set(self.batch_id, status=self.outcome())
        return progress

    def _fair_within_tenant(self, body: ChatRequest) -> ChatRequest:
        """A line's request, sharing its tenant's part of the limits with the tenant's other
        batches (its fairness key is the batch) unless the line names a key of its own."""
        if body.fairness_key is not None:
            return body
        return body.model_copy(update={"fairness_key": self.batch_id})

    def outcome(self) -> str:
        """How the run ended, as a batch status: cancelled, expired or completed."""
        if self._cancelled():
            return "cancelled"
        return "expired" if self.expired else "completed"

    def _past_expiry(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at

    def _expire(self, item: Request, errors: TextIO, progress: Progress) -> None:
        """Records a line the batch's completion window ended before."""
        self.expired = True
        message = "This request was not completed within the batch's completion window."
        record = {
            "id": None,
            "custom_id": item.custom_id,
            "response": None,
            "error": {"code": "batch_expired", "message": message},
        }
        _write(errors, record)
        progress.failed += 1
        self._report(progress)

    def _requests(
        self, progress: Progress, written: set[str], bad_lines: set[int], errors: TextIO
    ) -> Iterator[Request]:
        seen: set[str] = set()
        with self.input_path.open() as lines:
            for number, text in enumerate(lines, start=1):
                parsed = parse_line(number, text, seen, self.endpoint)
                if parsed is None:
                    continue
                if isinstance(parsed, BadLine):
                    if number not in bad_lines:
                        _write(errors, bad_line_record(parsed))
                    progress.invalid += 1
                    self._report(progress)
                    continue
                if parsed.custom_id in written:
                    progress.skipped += 1
                    self._report(progress)
                    continue
                yield parsed

    def _collect(self, item: Request, out: TextIO, errors: TextIO, progress: Progress) -> None:
        job_id = job_id_for(self.batch_id, item.custom_id)
        try:
            result = self._await(job_id)
        except ChatqError as exc:
            record = {
                "id": None,
                "custom_id": item.custom_id,
                "response": None,
                "error": {"code": exc.code, "message": exc.message},
            }
            _write(errors, record)
            progress.failed += 1
        else:
            record = output_line(item.custom_id, result, item)
            if result.status is JobStatus.done:
                _write(out, record)
                progress.done += 1
            else:
                _write(errors, record)
                progress.failed += 1
        self._report(progress)

    def _await(self, job_id: str) -> ChatResult:
        """The line's result; a cancel of the batch meanwhile cancels every line in flight
        at once (their calls stop), not after the line awaited ends."""
        waited = 0.0
        while True:
            try:
                result = self.client.result(job_id, timeout=CANCEL_CHECK_S)
            except JobTimeout:
                waited += CANCEL_CHECK_S
                if self._cancelled():
                    for in_flight in sorted(self._in_flight):
                        self.client.cancel(in_flight)
                elif waited >= self.client.settings.wait_timeout_s:
                    raise
                continue
            self._in_flight.discard(job_id)
            return result

    def _report(self, progress: Progress) -> None:
        self.on_progress(progress)
        if (progress.done + progress.failed) % 100 == 0:
            self._save(progress)

    def _save(self, progress: Progress) -> None:
        self.batches.save_progress(self.batch_id, asdict(progress))

    def _cancelled(self) -> bool:
        return self.batches.stop_asked(self.batch_id)


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _write(handle: TextIO, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    handle.flush()
