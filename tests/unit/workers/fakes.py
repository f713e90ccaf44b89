"""In-memory stand-ins for the worker's collaborators that talk to Redis or the provider, so
the runner's parts can be tested alone and exactly. End-to-end tests use the real ones."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chatq.shared.completion import Completion
from chatq.shared.deployments import Deployment
from chatq.shared.errors import ChatqError
from chatq.shared.jobs import ChatJob, ChatResult, JobStatus
from chatq.shared.store import JobStore
from chatq.workers.call_aborts import CallAborts
from chatq.workers.limiter import Deferred, Lease
from chatq.workers.provider import Endpoint, ProviderReply, StreamChunk, StreamState

HI = json.dumps(  # a provider's answer "hi", as it sends it
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
    }
).encode()


class QuietHandler(BaseHTTPRequestHandler):
    """A test HTTP server's handler: logs nothing, and answers with ``reply``."""

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server on a free local port, running in a daemon thread (``shutdown`` it after)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def answer(text: str = "Hi there", *, n: int = 1, usage: int = 5) -> Completion:
    return Completion.model_validate(
        {
            "id": "chatcmpl-up",
            "object": "chat.completion",
            "model": "up-model",
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": f"{text} {i}" if n > 1 else text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
                for i in range(n)
            ],
            "usage": {"prompt_tokens": 2, "completion_tokens": usage - 2, "total_tokens": usage},
            "system_fingerprint": "fp_fake",
        }
    )


def vectors(inputs: list[Any], *, usage: int | None = None) -> Completion:
    """An embeddings answer: input i's vector is ``[i, its length]``; usage its lengths."""
    tokens = sum(len(i) for i in inputs) if usage is None else usage
    return Completion.model_validate(
        {
            "object": "list",
            "model": "up-model",
            "data": [
                {"object": "embedding", "index": i, "embedding": [float(i), float(len(item))]}
                for i, item in enumerate(inputs)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def text_chunks(text: str, *, index: int = 0) -> list[dict[str, Any]]:
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    return [
        {"choices": [{"index": index, "delta": {"role": "assistant", "content": ""}}]},
        *({"choices": [{"index": index, "delta": {"content": p}}]} for p in pieces),
        {"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}},
    ]


@dataclass
class FakeProvider:
    """Answers calls from a script: each entry a Completion, a list of chunks, or an error."""

    script: list[Any] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    traces: list[str | None] = field(default_factory=list)  # each request's traceparent
    aborts: CallAborts = field(default_factory=CallAborts)  # as the real client's
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _next(self, endpoint: Endpoint, body: dict[str, Any], trace: str | None) -> Any:
        self.bodies.append(body)
        self.endpoints.append(endpoint)
        self.traces.append(trace)
        step = self.script.pop(0) if self.script else answer()
        if isinstance(step, Exception):
            raise step
        return step

    def complete(
        self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str, trace: str | None = None
    ) -> ProviderReply:
        step = self._next(endpoint, body, trace)
        assert isinstance(step, Completion), "scripted a stream for a plain call"
        return ProviderReply(step)

    def embed(
        self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str, trace: str | None = None
    ) -> ProviderReply:
        """Scripted (a step may be a function of the body and job id), or else one vector
        per input: ``[position, length]`` of each."""
        with self._lock:
            scripted = bool(self.script)
            step = self._next(endpoint, body, trace) if scripted else None
            if not scripted:
                self.bodies.append(body)
                self.endpoints.append(endpoint)
                self.traces.append(trace)
        if callable(step):
            step = step(body, job_id)
        if isinstance(step, Completion):
            return ProviderReply(step)
        return ProviderReply(vectors(body["input"]))

    def stream(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        *,
        job_id: str,
        state: StreamState,
        trace: str | None = None,
    ) -> Iterator[StreamChunk]:
        step = self._next(endpoint, body, trace)
        assert isinstance(step, list), "scripted a plain answer for a stream"
        for chunk in step:
            if isinstance(chunk, Exception):
                raise chunk
            yield StreamChunk(chunk, json.dumps(chunk))
        state.done = True


@dataclass
class FakeLimiter:
    """Books every call at once, unless told how far off the next slot is."""

    wait_s: float = 0.0
    booked: list[int] = field(default_factory=list)  # tokens charged per booking
    settled: list[int | None] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)

    def book(
        self, deployment: Deployment, tokens: int, *, max_wait_s: float, exact_estimate: bool
    ) -> Lease:
        if self.wait_s > max_wait_s:
            raise Deferred(self.wait_s)
        self.booked.append(tokens)
        return Lease(deployment.name, "lease", tokens, 0.0, 0.0)

    def settle(self, lease: Lease, actual_tokens: int | None) -> None:
        self.settled.append(actual_tokens)

    def gate(self, deployment: Deployment, lease: Lease) -> float:
        return 0.0

    def restamp(self, deployment: Deployment, lease: Lease) -> bool:
        return False

    def pause(self, deployment: Deployment, seconds: float) -> None:
        self.pauses.append(seconds)


@dataclass
class FakeHealth:
    failures: list[str] = field(default_factory=list)

    def choose(self, deployments: Sequence[Deployment], avoid: set[str]) -> Deployment:
        return next((d for d in deployments if d.name not in avoid), deployments[0])

    def record_failure(self, deployment: Deployment) -> bool:
        self.failures.append(deployment.name)
        return False

    def record_rate_limited(self, deployment: Deployment) -> None:
        pass

    def api_key(self, deployment: Deployment) -> str | None:
        return None

    def retire_key(self, deployment: Deployment, api_key: str) -> None:
        pass


class FakeRegistry:
    def __init__(self, *deployments: Deployment):
        self.deployments = list(deployments) or [deployment()]

    def for_alias(self, alias: str) -> list[Deployment]:
        found = [d for d in self.deployments if d.alias == alias]
        if not found:
            raise ChatqError(f"no deployment serves {alias}", code="model_not_found")
        return found


def deployment(name: str = "d1", **fields: Any) -> Deployment:
    return Deployment(alias="m", name=name, base_url=f"http://{name}", **fields)


class FakeStore:
    """Job records and event streams in dicts, with the scripts' rules: one end per job."""

    def __init__(self) -> None:
        self.status: dict[str, JobStatus] = {}
        self.attempts: dict[str, int] = {}
        self.busy: dict[str, float] = {}  # job id -> seconds left on another worker's claim
        self.results: dict[str, ChatResult] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.ends = 0

    def claim(self, job: ChatJob, *, lease_s: float, worker: str) -> Any:
        if (status := self.status.get(job.id)) is not None and status.is_terminal:
            return ["ended", status.value]
        if job.id in self.busy:
            return ["busy", self.busy[job.id]]
        self.attempts[job.id] = self.attempts.get(job.id, 0) + 1
        self.status[job.id] = JobStatus.in_progress
        return ["claimed", self.attempts[job.id]]

    started = staticmethod(JobStore.started)

    def finish(self, result: ChatResult, **_: Any) -> bool:
        if (status := self.status.get(result.job_id)) is not None and status.is_terminal:
            return False
        self.status[result.job_id] = result.status
        self.results[result.job_id] = result
        self.ends += 1
        return True

    def append_deltas(self, job_id: str, chunks: list[Any], *, first: bool) -> None:
        for chunk in chunks:
            data = json.loads(chunk) if isinstance(chunk, str) else chunk
            self.events.setdefault(job_id, []).append(data)

    def published_chunks(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.events.get(job_id, ()))

    def renew_leases(self, job_ids: Any, *, lease_s: float) -> int:
        return len(list(job_ids))
