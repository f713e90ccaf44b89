"""The OpenAI-compatible chat API client: one HTTP call, plain or streamed, with typed errors.

Retries are not done here (see ``workers.provider_call``): a call either returns or raises a
``ProviderError`` subclass saying whether it is worth repeating.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from pydantic import ValidationError
from requests.utils import get_environ_proxies

from shared.completion import Completion
from shared.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from shared.settings import ProviderTimeouts
from workers.provider_errors import ProviderSaid, provider_error
from workers.rate_headers import exhausted_for, retry_after_seconds
from workers.request_sent import POOL_CLASSES
from workers.sse import iter_sse_data
from workers.streamed_answer import StreamedAnswer
from workers.ws_transport import stream_chunks

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

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


class ProviderClient:
    """Calls ``POST {base_url}/chat/completions`` over pooled connections for all endpoints.

    urllib3 directly, not requests on top of it: the same connection pool and TLS, at half
    the CPU per call (measured: 180 against 340 us), which is a worker's largest cost per job.
    Proxies from the environment (``HTTPS_PROXY``, ``NO_PROXY``...) are honoured per endpoint.
    """

    def __init__(self, *, timeouts: ProviderTimeouts, pool_size: int = 100):
        self.timeouts = timeouts
        self.timeout = urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)
        self.pool_size = pool_size
        self.direct = urllib3.PoolManager(num_pools=8, maxsize=pool_size, retries=False)
        self.direct.pool_classes_by_scheme = POOL_CLASSES  # tell when a request is sent
        self._via: dict[str, urllib3.PoolManager] = {}  # URL -> the manager that reaches it
        self._pools: dict[str, tuple[urllib3.HTTPConnectionPool, str]] = {}  # direct URLs

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
        response = self._post(endpoint, body, job_id=job_id, stream=False, trace=trace)
        try:
            completion = Completion.model_validate_json(response.data)
        except ValidationError as exc:
            raise ProviderUnavailable(f"Provider sent an unreadable answer: {exc}") from exc
        if not completion.choices:
            raise ProviderUnavailable("Provider sent an answer with no choices")
        completion.choices.sort(key=lambda c: c.index)
        return ProviderReply(completion, exhausted_for(response.headers))

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
            headers = self._headers(endpoint, job_id=job_id, stream=True, trace=trace)
            for chunk in stream_chunks(endpoint.url, body, headers, self.timeouts):
                yield StreamChunk(chunk)
            state.done = True
            return
        response = self._post(endpoint, body, job_id=job_id, stream=True, trace=trace)
        state.exhausted_for = exhausted_for(response.headers)
        try:
            for data in iter_sse_data(response.stream(None)):
                if data.strip() == "[DONE]":
                    state.done = True
                    break
                chunk = orjson.loads(data)
                if "error" in chunk:
                    raise ProviderUnavailable(f"Provider stream error: {chunk['error']}")
                yield StreamChunk(chunk, data)
        except urllib3.exceptions.TimeoutError as exc:
            idle = self.timeouts.read
            raise ProviderTimeout(f"Provider stream idle for over {idle:g} s") from exc
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ProviderUnavailable(f"Provider stream broke off: {exc}") from exc
        finally:
            response.release_conn()

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

    def _manager(self, url: str) -> urllib3.PoolManager:
        """Direct, or through the proxy the environment names for this URL (read once)."""
        manager = self._via.get(url)
        if manager is None:
            scheme = url.split("://", 1)[0]
            proxy = get_environ_proxies(url).get(scheme)
            manager = self.direct
            if proxy:
                manager = urllib3.ProxyManager(
                    proxy, num_pools=8, maxsize=self.pool_size, retries=False
                )
                manager.pool_classes_by_scheme = POOL_CLASSES
            self._via[url] = manager
        return manager

    def _post(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        *,
        job_id: str,
        stream: bool,
        trace: str | None,
    ) -> urllib3.BaseHTTPResponse:
        url = endpoint.url
        try:
            manager = self._manager(url)
            if manager is self.direct:  # the endpoint's own pool, found once
                pool, path = self._pools.get(url) or self._pools.setdefault(
                    url, (manager.connection_from_url(url), urllib3.util.parse_url(url).request_uri)
                )
            else:
                pool, path = manager, url  # type: ignore[assignment]
            response = pool.urlopen(
                "POST",
                path,
                body=orjson.dumps(body),
                headers=self._headers(endpoint, job_id=job_id, stream=stream, trace=trace),
                timeout=self.timeout,
                preload_content=not stream,
                redirect=False,
                retries=False,
            )
        except urllib3.exceptions.TimeoutError as exc:
            raise ProviderTimeout(f"Provider did not answer within the timeout: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ProviderUnavailable(f"Could not reach the provider: {exc}") from exc
        if response.status >= 400:
            error = error_from_response(response, endpoint)  # reads the body: frees the conn
            response.release_conn()
            raise error
        return response


def error_from_response(response: urllib3.BaseHTTPResponse, endpoint: Endpoint) -> ProviderError:
    """The typed error for a provider's 4xx or 5xx answer, with what the provider said."""
    wait = retry_after_seconds(response.headers, now=time.time())
    text = response.data.decode("utf-8", "replace") if response.data else ""
    said = ProviderSaid.parse(text, response.reason).scrubbed(endpoint.api_key, endpoint.base_url)
    return provider_error(response.status, said, retry_after=wait, headers=response.headers)
