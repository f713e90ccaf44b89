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

import requests
from requests.adapters import HTTPAdapter

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
    """Calls ``POST {base_url}/chat/completions`` over one pooled HTTP session for all endpoints."""

    def __init__(
        self,
        *,
        timeouts: ProviderTimeouts,
        pool_size: int = 100,
        session: requests.Session | None = None,
    ):
        self.timeouts = timeouts
        self.session = session or requests.Session()
        # Proxy variables and ~/.netrc are read once per endpoint rather than on every call,
        # where requests' per-call lookup costs about a sixth of a worker's CPU per job.
        self.session.trust_env = False
        self._proxies: dict[str, dict[str, str]] = {}
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def complete(self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str) -> ProviderReply:
        if endpoint.transport == "websocket":  # it only streams: gather the answer
            state = StreamState()
            pieces = list(
                self.stream(endpoint, {**body, "stream": True}, job_id=job_id, state=state)
            )
            return ProviderReply("".join(pieces), state.finish_reason, state.usage, state.model)
        response = self._post(endpoint, body, job_id=job_id, stream=False)
        try:
            payload = response.json()
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
            for data in iter_sse_data(response.iter_content(chunk_size=None)):
                if data.strip() == "[DONE]":
                    state.done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise ProviderUnavailable(f"Provider stream error: {chunk['error']}")
                yield from _read_chunk(chunk, state)
        except requests.exceptions.Timeout as exc:
            idle = self.timeouts.read
            raise ProviderTimeout(f"Provider stream idle for over {idle:g} s") from exc
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise ProviderUnavailable(f"Provider stream broke off: {exc}") from exc
        finally:
            response.close()
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

    def _post(
        self, endpoint: Endpoint, body: dict[str, Any], *, job_id: str, stream: bool
    ) -> requests.Response:
        headers = self._headers(endpoint, job_id=job_id, stream=stream)
        url = endpoint.url
        proxies = self._proxies.get(url)
        if proxies is None:
            proxies = self._proxies[url] = requests.utils.get_environ_proxies(url)
        try:
            response = self.session.post(
                url,
                proxies=proxies,
                data=json.dumps(body),
                headers=headers,
                timeout=(self.timeouts.connect, self.timeouts.read),
                stream=stream,
            )
        except requests.exceptions.Timeout as exc:
            raise ProviderTimeout(f"Provider did not answer within the timeout: {exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise ProviderUnavailable(f"Could not reach the provider: {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
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


def error_from_response(response: requests.Response) -> ProviderError:
    """The typed error for a provider's 4xx or 5xx answer, with its own message."""
    wait = retry_after_seconds(response.headers, now=time.time())
    return provider_error(
        response.status_code,
        _provider_message(response),
        retry_after=wait,
        headers=response.headers,
    )


def _provider_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return (response.text or response.reason or "no details")[:500]
