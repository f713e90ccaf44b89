"""Model aliases and the deployments behind them, from a TOML file or the environment.

A job names an alias (its ``model``); workers pick one healthy deployment of that alias.

    # deployments.toml  (CHATQ_DEPLOYMENTS_FILE=deployments.toml)
    [[deployments]]
    alias = "chat-small"            # what callers send as "model"
    name = "openai-main"            # unique; names the limiter's and health's Redis keys
    base_url = "https://api.openai.com/v1"
    model = "gpt-4o-mini"           # the provider's own model name (default: the alias)
    api_keys = ["env:OPENAI_KEY_1", "env:OPENAI_KEY_2"]  # used in turn; env: reads a variable
    rpm = 500                        # requests per minute, across every worker
    tpm = 200000                     # tokens per minute (prompt + max_tokens, settled on usage)
    max_concurrency = 64             # calls in flight at once, across every worker
    priority = 0                     # lower is tried first; ties are spread by weight
    weight = 1
    transport = "http"               # or "websocket": streams over ws(s):// at the same URL
    max_n = 8                        # choices per call ('n'): identical sampled requests that
                                     # arrive together share one call (1: not supported)
    images = true                    # takes image parts (false: text only; see hooks.ocr)
    max_inputs = 256                 # embeddings inputs per call: requests that arrive together
                                     # share one call, their inputs in one list (1: never)

The file is read again when it changes, so keys rotate and deployments change without a restart.
"""

from __future__ import annotations

import os
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from chatq.shared.errors import ChatqError, InvalidJob
from chatq.shared.settings import Settings
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

RELOAD_CHECK_S = 2.0
DEFAULT_MAX_INPUTS = 256
MAX_INPUTS = 2048  # OpenAI's limit on one embeddings request's inputs


class Deployment(BaseModel):
    """One provider endpoint serving an alias, with its own limits and keys."""

    alias: str = Field(min_length=1)
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    base_url: str = Field(min_length=1)
    model: str | None = None
    api_keys: list[SecretStr] = Field(default_factory=list)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    max_concurrency: int | None = Field(None, ge=1)
    priority: int = 0
    weight: float = Field(1.0, gt=0)
    transport: Literal["http", "websocket"] = "http"
    max_n: int = Field(1, ge=1, le=128)
    # Embeddings inputs one call may carry: requests that arrive together are gathered into
    # one call's ``input`` list up to this many (OpenAI takes 2048); 1 sends each alone.
    max_inputs: int = Field(DEFAULT_MAX_INPUTS, ge=1, le=MAX_INPUTS)
    # The provider's limits also hold pro rata over any window this long (OpenAI's are
    # quantised to about a second); 0 if they hold per minute only.
    quantum_s: float = Field(1.0, ge=0, le=60)
    images: bool = True  # reads image parts; if no deployment of an alias does, OCR may help

    @field_validator("api_keys", mode="before")
    @classmethod
    def _resolve_env_keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = [k for k in value.split(",") if k.strip()]
        if not isinstance(value, list):
            return value
        resolved = []
        for key in value:
            if isinstance(key, str) and key.startswith("env:"):
                name = key[4:]
                if name not in os.environ:
                    raise ValueError(f"api key variable {name} is not set")
                key = os.environ[name]
            resolved.append(key.strip() if isinstance(key, str) else key)
        return resolved

    @property
    def provider_model(self) -> str:
        return self.model or self.alias

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/")


class DeploymentsFile(BaseModel):
    deployments: list[Deployment] = Field(min_length=1)


def default_deployments(settings: Settings) -> list[Deployment]:
    """One deployment per offered model, from CHATQ_PROVIDER_* variables."""
    keys = settings.provider_api_key.get_secret_value() if settings.provider_api_key else ""
    return [
        Deployment(
            alias=model,
            name=f"default-{model}" if len(settings.models) > 1 else "default",
            base_url=settings.effective_provider_base_url,
            api_keys=[k.strip() for k in keys.split(",") if k.strip()],
            rpm=settings.provider_rpm,
            tpm=settings.provider_tpm,
            max_concurrency=settings.provider_max_concurrency,
            transport=settings.provider_transport,
            max_n=settings.provider_max_n,
            max_inputs=settings.provider_max_inputs,
            quantum_s=settings.provider_quantum_s,
        )
        for model in settings.models
    ]


def load_deployments(path: Path) -> list[Deployment]:
    try:
        data = tomllib.loads(path.read_text())
        deployments = DeploymentsFile.model_validate(data).deployments
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ChatqError(f"Cannot use deployments file {path}: {exc}") from exc
    names = [d.name for d in deployments]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ChatqError(f"Deployment names must be unique in {path}: {sorted(duplicates)}")
    return deployments


class DeploymentRegistry:
    """The deployments in force, re-read when their file changes (checked every few seconds)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[Exception], None] | None = None,
    ):
        self.settings = settings
        self.path = settings.deployments_file
        self.clock = clock
        self.on_error = on_error
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._checked = float("-inf")
        self._by_alias: dict[str, list[Deployment]] = {}
        self._install(load_deployments(self.path) if self.path else default_deployments(settings))
        if self.path:
            self._mtime = self.path.stat().st_mtime
            self._checked = self.clock()

    def _install(self, deployments: list[Deployment]) -> None:
        by_alias: dict[str, list[Deployment]] = {}
        for deployment in deployments:
            by_alias.setdefault(deployment.alias, []).append(deployment)
        for group in by_alias.values():
            group.sort(key=lambda d: d.priority)
        self._by_alias = by_alias

    def _maybe_reload(self) -> None:
        if self.path is None or self.clock() - self._checked < RELOAD_CHECK_S:
            return
        with self._lock:  # a thread arriving mid-reload waits for it, never uses the old set
            if self.clock() - self._checked < RELOAD_CHECK_S:
                return
            try:
                mtime = self.path.stat().st_mtime
                if mtime != self._mtime:
                    self._install(load_deployments(self.path))
                    self._mtime = mtime
            except (OSError, ChatqError) as exc:  # keep serving with what was loaded
                if self.on_error:
                    self.on_error(exc)
            finally:
                self._checked = self.clock()

    def aliases(self) -> list[str]:
        self._maybe_reload()
        return list(self._by_alias)

    def for_alias(self, alias: str) -> list[Deployment]:
        """The deployments serving ``alias``, most preferred first."""
        self._maybe_reload()
        deployments = self._by_alias.get(alias)
        if not deployments:
            raise InvalidJob(f"No deployment serves the model '{alias}'.", param="model")
        return deployments
