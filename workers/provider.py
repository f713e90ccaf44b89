"""The OpenAI-compatible chat API client: one HTTP call, plain or streamed, with typed errors.

Retries are not done here (see ``chatq.workers.provider_call``): a call either returns or raises a
``ProviderError`` subclass saying whether it is worth repeating.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from chatq.shared.completion import Completion
from chatq.shared.errors import (
    JobCancelled,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from chatq.shared.settings import ProviderTimeouts
from chatq.workers.call_aborts import DEADLINE, CallAborts
from chatq.workers.http_transport import Pool, Reply, proxied
from chatq.workers.provider_errors import ProviderSaid, provider_error
from chatq.workers.rate_headers import exhausted_for, retry_after_seconds
from chatq.workers.request_sent import POOL_CLASSES
from chatq.workers.sse import iter_sse_data
from chatq.workers.streamed_answer import StreamedAnswer
from chatq.workers.ws_transport import stream_chunks
from pydantic import ValidationError
from requests.utils import get_environ_proxies

JOB_ID_HEADER = "X-Chatq-Job-Id"


@dataclass
class ProviderReply:
    """A finished provider answer, whole."""

    completion: Completion
    exhausted_for: float | None = None  # the provider said a limit is spent for this long


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One ``chat.completion.chunk``, parsed, and its JSON as it came (None if unknown)."""

    data: dict[str, Any]
    raw: str | None = None


@dataclass
class StreamState:
    """What a streamed answer has told besides its chunks."""

    exhausted_for: float | None = None
    done: bool = False


@dataclass(frozen=True)
class Endpoint:
    """Where one call goes: a deployment's base URL and the API key to use this time."""

    base_url: str
    api_key: str | None = None
    transport: str = "http"  # or "websocket"
    path: str = "/chat/completions"  # or "/embeddings"

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.path


class ProviderClient:
    """Calls ``POST {base_url}/chat/completions`` over pooled connections for all endpoints
    (``chatq.workers.http_transport``). Proxies from the environment (``HTTPS_PROXY``,
    ``NO_PROXY``...) are honoured per endpoint."""

    def __init__(
        self,
        *,
        timeouts: ProviderTimeouts,
        pool_size: int = 100,
        aborts: CallAborts | None = None,
    ):
        self.timeouts = timeouts
        self.aborts = aborts or CallAborts()  # calls stopped when their job is cancelled
        self.timeout = urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)
        self.pool_size = pool_size
        self._via: dict[str, urllib3.ProxyManager | None] = {}  # URL -> its proxy, if any
        self._pools: dict[str, tuple[Pool, str]] = {}  # direct URLs: their pool and path

    def complete(
        self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str, trace: str | None = None
    ) -> ProviderReply:
        """The answer to ``body``; ``trace`` (a ``traceparent``) goes with the request."""
        if endpoint.transport == "websocket":  # it only streams: gather the answer
            answer = StreamedAnswer()
            for piece in self.stream(
                endpoint, {**body, "stream": True}, job_id=job_id, state=StreamState(), trace=trace
            ):
                answer.add(piece.data)
            return ProviderReply(answer.completion())
        data, headers = self._answer_of(endpoint, body, job_id=job_id, trace=trace)
        try:
            completion = Completion.model_validate_json(data)
        except ValidationError as exc:
            raise ProviderUnavailable(f"Provider sent an unreadable answer: {exc}") from exc
        if not completion.choices:
            raise ProviderUnavailable("Provider sent an answer with no choices")
        completion.choices.sort(key=lambda c: c.index)
        return ProviderReply(completion, exhausted_for(headers))

    def embed(
        self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str, trace: str | None = None
    ) -> ProviderReply:
        """The vectors of ``body``'s inputs (``/embeddings``), as a ``Completion`` with no
        choices whose ``data`` holds them as the provider sent them."""
        data, headers = self._answer_of(endpoint, body, job_id=job_id, trace=trace)
        try:
            answer = Completion.model_validate_json(data)
        except ValidationError as exc:
            raise ProviderUnavailable(f"Provider sent unreadable embeddings: {exc}") from exc
        vectors = answer.model_extra.get("data") if answer.model_extra else None
        if not isinstance(vectors, list) or not vectors:
            raise ProviderUnavailable("Provider sent embeddings with no data")
        return ProviderReply(answer, exhausted_for(headers))

    def _answer_of(
        self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str, trace: str | None
    ) -> tuple[bytes, Mapping[str, str]]:
        """An unstreamed call's whole body and headers; a stop from outside (a cancel, a
        deadline) raises ``JobCancelled``, any other failure its typed ``ProviderError``."""
        try:
            response = self._post(endpoint, body, job_id=job_id, stream=False, trace=trace)
            data = response.read()
        except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            self._raise_if_aborted(job_id, exc)
            raise ProviderTimeout(f"Provider did not answer within the timeout: {exc}") from exc
        except UNREACHABLE as exc:
            self._raise_if_aborted(job_id, exc)
            raise ProviderUnavailable(f"The provider's answer broke off: {exc}") from exc
        except ProviderError as exc:
            self._raise_if_aborted(job_id, exc)
            raise
        finally:
            self.aborts.closed(job_id)
        self._raise_if_aborted(job_id)
        return data, response.headers

    def stream(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        *,
        job_id: str,
        state: StreamState,
        trace: str | None = None,
    ) -> Iterator[StreamChunk]:
        """Yields the answer's chunks as they come; raises if the stream breaks off."""
        if endpoint.transport == "websocket":
            yield from self._stream_over_websocket(endpoint, body, job_id, state, trace)
            return
        try:
            response = self._post(endpoint, body, job_id=job_id, stream=True, trace=trace)
        except ProviderError as exc:
            self.aborts.closed(job_id)
            self._raise_if_aborted(job_id, exc)
            raise
        state.exhausted_for = exhausted_for(response.headers)
        try:
            for data in iter_sse_data(response.chunks()):
                if data.strip() == "[DONE]":
                    state.done = True
                    break
                chunk = orjson.loads(data)
                if "error" in chunk:
                    raise ProviderUnavailable(f"Provider stream error: {chunk['error']}")
                yield StreamChunk(chunk, data)
            self._raise_if_aborted(job_id)  # shut down mid-stream: the answer ended early
        except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            self._raise_if_aborted(job_id, exc)
            idle = self.timeouts.read
            raise ProviderTimeout(f"Provider stream idle for over {idle:g} s") from exc
        except (*UNREACHABLE, ValueError) as exc:
            self._raise_if_aborted(job_id, exc)
            raise ProviderUnavailable(f"Provider stream broke off: {exc}") from exc
        finally:
            self.aborts.closed(job_id)
            response.close()

    def _stream_over_websocket(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        job_id: str,
        state: StreamState,
        trace: str | None,
    ) -> Iterator[StreamChunk]:
        self._raise_if_aborted(job_id)  # cancelled between tries: none more
        headers = self._headers(endpoint, job_id=job_id, stream=True, trace=trace)
        chunks = stream_chunks(
            endpoint.url,
            body,
            headers,
            self.timeouts,
            on_socket=lambda sock: self.aborts.opened(job_id, sock),
        )
        try:
            for chunk in chunks:
                yield StreamChunk(chunk)
        except ProviderError as exc:
            self._raise_if_aborted(job_id, exc)
            raise
        finally:
            self.aborts.closed(job_id)
        self._raise_if_aborted(job_id)  # shut down mid-stream: the answer ended early
        state.done = True

    def _raise_if_aborted(self, job_id: str, cause: BaseException | None = None) -> None:
        """Raises ``JobCancelled`` if the job's call was stopped (for its cancel, or its
        deadline)."""
        why = self.aborts.aborted(job_id)
        if why == DEADLINE:
            message = "The job's deadline passed during its provider call; the call was stopped."
            raise JobCancelled(message, code="deadline_exceeded") from cause
        if why is not None:
            message = "The job was cancelled while its provider call ran; the call was stopped."
            raise JobCancelled(message) from cause

    @staticmethod
    def _headers(
        endpoint: Endpoint, *, job_id: str, stream: bool, trace: str | None
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            JOB_ID_HEADER: job_id,
        }
        if trace is not None:
            headers["traceparent"] = trace
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        return headers

    def _proxy(self, url: str) -> urllib3.ProxyManager | None:
        """The proxy the environment names for this URL (read once), or None."""
        if url not in self._via:
            scheme = url.split("://", 1)[0]
            proxy = get_environ_proxies(url).get(scheme)
            manager = None
            if proxy:
                manager = urllib3.ProxyManager(
                    proxy, num_pools=8, maxsize=self.pool_size, retries=False
                )
                manager.pool_classes_by_scheme = POOL_CLASSES  # tell when a request is sent
            self._via[url] = manager
        return self._via[url]

    def _pool(self, url: str) -> tuple[Pool, str]:
        """The endpoint's own pool, and the path to post to (found once)."""
        found = self._pools.get(url)
        if found is None:
            parts = urllib3.util.parse_url(url)
            scheme, host = parts.scheme or "http", parts.host or ""
            pool = Pool(scheme, host, parts.port, maxsize=self.pool_size)
            found = self._pools.setdefault(url, (pool, parts.request_uri))
        return found

    def _post(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        *,
        job_id: str,
        stream: bool,
        trace: str | None,
    ) -> Reply:
        self._raise_if_aborted(job_id)  # cancelled between tries: none more
        url = endpoint.url
        data = orjson.dumps(body)
        headers = self._headers(endpoint, job_id=job_id, stream=stream, trace=trace)
        try:
            proxy = self._proxy(url)
            if proxy is None:
                pool, path = self._pool(url)
                response = pool.post(
                    path,
                    data,
                    headers,
                    connect_s=self.timeouts.connect,
                    read_s=self.timeouts.read,
                    on_socket=lambda sock: self.aborts.opened(job_id, sock),
                )
            else:
                response = proxied(
                    proxy.urlopen(
                        "POST",
                        url,
                        body=data,
                        headers=headers,
                        timeout=self.timeout,
                        preload_content=False,
                        redirect=False,
                        retries=False,
                    )
                )
                if (sock := response.socket()) is not None:  # known once the headers came
                    self.aborts.opened(job_id, sock)
        except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            raise ProviderTimeout(f"Provider did not answer within the timeout: {exc}") from exc
        except UNREACHABLE as exc:
            raise ProviderUnavailable(f"Could not reach the provider: {exc}") from exc
        if response.status >= 400:
            raise error_from_response(response, endpoint)  # reads the body: frees the conn
        return response


UNREACHABLE = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


def error_from_response(response: Reply, endpoint: Endpoint) -> ProviderError:
    """The typed error for a provider's 4xx or 5xx answer, with what the provider said."""
    wait = retry_after_seconds(response.headers, now=time.time())
    try:
        body = response.read()
    except (*UNREACHABLE, TimeoutError):
        body = b""
    text = body.decode("utf-8", "replace")
    said = ProviderSaid.parse(text, response.reason).scrubbed(endpoint.api_key, endpoint.base_url)
    return provider_error(response.status, said, retry_after=wait, headers=response.headers)
