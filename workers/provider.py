"""The OpenAI-compatible chat API client: one HTTP call, plain or streamed, with typed errors.

Retries are not done here (see ``workers.chat``): a call either returns or raises a
``ProviderError`` subclass saying whether it is worth repeating.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import urllib3
from requests.utils import get_environ_proxies

from shared.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from shared.jobs import Usage
from shared.settings import ProviderTimeouts
from workers.provider_errors import provider_error
from workers.retry import exhausted_for, retry_after_seconds
from workers.sse import iter_sse_data
from workers.ws_transport import stream_chunks

JOB_ID_HEADER = "X-Chatq-Job-Id"


@dataclass(frozen=True)
class Choice:
    """One of the answers of a call that asked for several (``n``)."""

    content: str
    finish_reason: str | None


@dataclass
class ProviderReply:
    """A finished provider answer: the first choice, and every choice in index order."""

    content: str
    finish_reason: str | None
    usage: Usage | None
    model: str | None = None
    exhausted_for: float | None = None  # the provider said a limit is spent for this long
    choices: list[Choice] = field(default_factory=list)


@dataclass
class StreamState:
    """What a streamed answer has told so far besides its text."""

    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    exhausted_for: float | None = None
    done: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


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
        self._via: dict[str, urllib3.PoolManager] = {}  # URL -> the manager that reaches it
        self._pools: dict[str, tuple[urllib3.HTTPConnectionPool, str]] = {}  # direct URLs

    def complete(self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str) -> ProviderReply:
        if endpoint.transport == "websocket":  # it only streams: gather the answer
            state = StreamState()
            pieces = list(
                self.stream(endpoint, {**body, "stream": True}, job_id=job_id, state=state)
            )
            return ProviderReply("".join(pieces), state.finish_reason, state.usage, state.model)
        response = self._post(endpoint, body, job_id=job_id, stream=False)
        try:
            payload = json.loads(response.data)
            choices = [
                Choice((c.get("message") or {}).get("content") or "", c.get("finish_reason"))
                for c in sorted(payload["choices"], key=lambda c: c.get("index", 0))
            ]
            first = choices[0]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderUnavailable(f"Provider sent an unreadable answer: {exc}") from exc
        usage = payload.get("usage")
        return ProviderReply(
            content=first.content,
            finish_reason=first.finish_reason,
            usage=Usage.model_validate(usage) if usage else None,
            model=payload.get("model"),
            exhausted_for=exhausted_for(response.headers),
            choices=choices,
        )

    def stream(
        self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str, state: StreamState
    ) -> Iterator[str]:
        """Yields the answer's text deltas; fills ``state`` with finish reason and usage."""
        if endpoint.transport == "websocket":
            headers = self._headers(endpoint, job_id=job_id, stream=True)
            for chunk in stream_chunks(endpoint.url, body, headers, self.timeouts):
                yield from _read_chunk(chunk, state)
            _check_complete(state)
            return
        response = self._post(endpoint, body, job_id=job_id, stream=True)
        state.exhausted_for = exhausted_for(response.headers)
        try:
            for data in iter_sse_data(response.stream(None)):
                if data.strip() == "[DONE]":
                    state.done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise ProviderUnavailable(f"Provider stream error: {chunk['error']}")
                yield from _read_chunk(chunk, state)
        except urllib3.exceptions.TimeoutError as exc:
            idle = self.timeouts.read
            raise ProviderTimeout(f"Provider stream idle for over {idle:g} s") from exc
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ProviderUnavailable(f"Provider stream broke off: {exc}") from exc
        finally:
            response.release_conn()
        _check_complete(state)

    @staticmethod
    def _headers(endpoint: Endpoint, *, job_id: str, stream: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            JOB_ID_HEADER: job_id,
        }
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
            self._via[url] = manager
        return manager

    def _post(
        self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str, stream: bool
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
                body=json.dumps(body).encode(),
                headers=self._headers(endpoint, job_id=job_id, stream=stream),
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
            error = error_from_response(response)  # reads the body, so the connection is free
            response.release_conn()
            raise error
        return response


def _read_chunk(chunk: dict[str, Any], state: StreamState) -> Iterator[str]:
    """The text deltas of one ``chat.completion.chunk``; notes model, finish reason, usage."""
    state.model = chunk.get("model") or state.model
    if chunk.get("usage"):
        state.usage = Usage.model_validate(chunk["usage"])
    for choice in chunk.get("choices") or ():
        if choice.get("finish_reason"):
            state.finish_reason = choice["finish_reason"]
        content = (choice.get("delta") or {}).get("content")
        if content:
            yield content


def _check_complete(state: StreamState) -> None:
    if state.finish_reason is None:
        raise ProviderUnavailable("Provider stream ended before the answer was complete")


def error_from_response(response: urllib3.BaseHTTPResponse) -> ProviderError:
    """The typed error for a provider's 4xx or 5xx answer, with its own message."""
    wait = retry_after_seconds(response.headers, now=time.time())
    return provider_error(
        response.status,
        _provider_message(response),
        retry_after=wait,
        headers=response.headers,
    )


def _provider_message(response: urllib3.BaseHTTPResponse) -> str:
    text = response.data.decode("utf-8", "replace") if response.data else ""
    try:
        error = json.loads(text).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return (text or response.reason or "no details")[:500]
