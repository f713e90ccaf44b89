"""Chat job models (the wire format between producers and workers) and the job status enum."""

from __future__ import annotations

import re
import secrets
import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from chatq.shared.completion import Completion, Usage
from chatq.shared.tracing import valid_traceparent
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# Fields that steer chatq itself and are never forwarded to the provider.
CHATQ_FIELDS = frozenset(
    {
        "session_id",
        "session_ttl",
        "priority",
        "job_id",
        "deadline_s",
        "cache",
        "coalesce",
        "fairness_key",
    }
)
SAFE_ID = r"^[A-Za-z0-9_.@-]+$"  # ids that become part of Redis keys
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's rule for a tool's name
INT64 = 2**63
MAX_STOPS = 4
# A logit bias, as OpenAI bounds it; an int stays an int on its way to the provider.
Bias = Annotated[int, Field(ge=-100, le=100)] | Annotated[float, Field(ge=-100, le=100)]


class Role(StrEnum):
    system = "system"
    developer = "developer"
    user = "user"
    assistant = "assistant"
    tool = "tool"


class Priority(StrEnum):
    """Which queue a job rides: chat traffic never waits behind a bulk batch."""

    interactive = "interactive"
    bulk = "bulk"


class JobStatus(StrEnum):
    queued = "queued"
    in_progress = "in_progress"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.done, JobStatus.failed, JobStatus.cancelled})


class ChatMessage(BaseModel):
    """One OpenAI chat message. ``content`` may be text or a list of content parts."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _content_where_required(self) -> ChatMessage:
        if self.role in (Role.system, Role.developer, Role.user) and self.content is None:
            raise ValueError(f"a '{self.role.value}' message needs 'content'")
        if self.role is Role.tool and not self.tool_call_id:
            raise ValueError("a 'tool' message needs 'tool_call_id'")
        return self

    def text(self) -> str:
        """The message's text; image and other non-text parts contribute nothing."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return " ".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")

    def prompt_text(self) -> str:
        """Everything of the message a model reads as text: its text and its tool calls."""
        calls = [
            f"{function.get('name') or ''} {function.get('arguments') or ''}"
            for call in self.tool_calls or ()
            if isinstance(function := call.get("function"), dict)
        ]
        return " ".join([self.text(), *calls]) if calls else self.text()


class ChatRequest(BaseModel):
    """An OpenAI-style chat completion request plus chatq's own fields.

    OpenAI's parameters that OpenAI bounds are declared here with its bounds, so a request
    out of them is a 400 before it is queued; the others (``tools``, ``response_format``...)
    are kept and forwarded as sent.
    """

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128, description="How many choices to generate.")
    stop: str | Annotated[list[str], Field(max_length=MAX_STOPS)] | None = Field(
        None, description="Up to 4 sequences where the answer stops."
    )
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict[str | int, Bias] | None = Field(
        None, description="Token ids mapped to a bias from -100 to 100."
    )
    seed: int | None = Field(None, ge=-INT64, lt=INT64)
    stream: bool = False
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=SAFE_ID,
        description="Keep the conversation server-side: send only the new messages.",
    )
    session_ttl: Literal["short", "long"] | None = Field(
        None, description="How long an idle session is kept (default: short)."
    )
    user: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=SAFE_ID,
        description="The end user (OpenAI's field): their profile is attached; erasable.",
    )
    priority: Priority = Priority.interactive
    metadata: dict[str, str] | None = Field(None, description="Forwarded to the provider.")
    deadline_s: float | None = Field(
        None, gt=0, description="Cancel the job rather than send it this long after submission."
    )
    cache: bool = Field(True, description="Answer from (and fill) the answer cache.")
    fairness_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=SAFE_ID,
        description="Share the tenant's part of the provider's limits fairly among these "
        "keys (an end user, a batch); default: the tenant as a whole.",
    )
    coalesce: bool | None = Field(
        None,
        description="Share one provider call with identical requests in flight. Default: only "
        "when the answer is deterministic (temperature 0 or unset).",
    )

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        """OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512."""
        if value is None:
            return value
        if len(value) > 16:
            raise ValueError("at most 16 metadata keys")
        if any(len(k) > 64 for k in value):
            raise ValueError("metadata keys may have at most 64 characters")
        if any(len(v) > 512 for v in value.values()):
            raise ValueError("metadata values may have at most 512 characters")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _few_stops(cls, value: Any) -> Any:
        """OpenAI's limit, said once rather than as a miss of each type ``stop`` may have."""
        if isinstance(value, list) and len(value) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences")
        return value

    @model_validator(mode="after")
    def _tool_names(self) -> ChatRequest:
        """OpenAI's rule for a function tool's name (``tools`` itself is forwarded as sent)."""
        tools = (self.model_extra or {}).get("tools")
        for index, tool in enumerate(tools if isinstance(tools, list) else ()):
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if name is not None and not (isinstance(name, str) and FUNCTION_NAME.match(name)):
                where = f"tools[{index}].function.name"
                raise PydanticCustomError(  # ctx.param: where the error says it is
                    "tool_name",
                    "{param} must be 1 to 64 letters, digits, _ or -",
                    {"param": where},
                )
        return self

    @property
    def completion_limit(self) -> int | None:
        """The most tokens the answer may have: ``max_completion_tokens``, else ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def choice_count(self) -> int:
        return self.n or 1

    def provider_body(
        self, *, stream: bool, model: str | None = None, choices: int | None = None
    ) -> dict[str, Any]:
        """The JSON body to send upstream: every field the caller set, chatq's own left out.
        ``choices`` overrides ``n`` (1 leaves it out): a gathered call asks one per job."""
        body = self.model_dump(mode="json", exclude_unset=True, exclude=set(CHATQ_FIELDS))
        if choices is not None:
            body.pop("n", None)
            if choices > 1:
                body["n"] = choices
        body.pop("stream_options", None)
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        if model is not None:
            body["model"] = model
        return body


class EmbeddingInput(BaseModel):
    """What an embeddings job sends to ``/embeddings``: its inputs, exactly as given (texts
    or token arrays), and the vector size asked for."""

    input: list[str] | list[list[int]] = Field(min_length=1)
    dimensions: int | None = Field(None, ge=1)


def new_job_id() -> str:
    return f"job_{secrets.token_hex(16)}"  # as uuid4().hex, at a quarter of the CPU


class ChatJob(BaseModel):
    """A chat request accepted into the queue: the Celery task's only argument."""

    id: str = Field(default_factory=new_job_id, min_length=1, max_length=200)
    request: ChatRequest
    created_at: float = Field(default_factory=time.time)
    tenant: str | None = None  # who submitted it, when the gateway authenticated the caller
    webhook_url: str | None = None  # called, signed, when the job ends
    privacy: bool = True  # mask personal data before it reaches the provider
    session_new_from: int | None = None  # messages from here on are new to the session
    request_id: str | None = None  # the HTTP request that submitted it, for the logs
    traceparent: str | None = None  # W3C trace context of its submission (chatq.shared.tracing)
    request_hash: str | None = None  # with an idempotency key: its request's hash
    # An embeddings job: its call goes to /embeddings with these inputs. Its ``request`` is
    # their stand-in for what is chat-shaped (limits, the scheduler's token estimate).
    embedding: EmbeddingInput | None = None

    @field_validator("traceparent", mode="before")
    @classmethod
    def _well_formed(cls, value: Any) -> str | None:
        """A malformed trace context is dropped, not the job."""
        return valid_traceparent(value) if isinstance(value, str) else None

    @field_serializer("request")
    def _as_sent(self, request: ChatRequest) -> dict[str, Any]:
        """The request as the caller sent it: explicit nulls kept, unset fields left out."""
        return request.model_dump(mode="json", exclude_unset=True)

    @property
    def deadline(self) -> float | None:
        """When the job stops being worth sending (Unix seconds), if the caller set a limit."""
        seconds = self.request.deadline_s
        return None if seconds is None else self.created_at + seconds


class Timings(BaseModel):
    """Wall-clock instants (Unix seconds) of the job's life, where known."""

    created_at: float | None = None
    started_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None


class JobError(BaseModel):
    """Why a job failed or was cancelled, in OpenAI error terms. ``status`` is the HTTP status
    a caller gets for it, where that is the provider's own (a 4xx passed through)."""

    type: str
    code: str | None = None
    message: str
    param: str | None = None
    status: int | None = None


class ChatResult(BaseModel):
    """How a job ended. Written once, when the job reaches a terminal status.

    ``completion`` is the provider's answer, whole; the other fields are chatq's own facts.
    """

    job_id: str
    status: JobStatus
    model: str | None = None  # the caller's alias (the provider's name is completion.model)
    completion: Completion | None = None
    timings: Timings = Timings()
    attempts: int = 0
    error: JobError | None = None
    cached: bool = False  # answered from the answer cache, with no provider call
    coalesced_with: str | None = None  # the job whose provider call this one shared
    gathered: int | None = None  # jobs answered by the same multi-choice call, one choice each
    answered_by: str | None = None  # the hook that answered, with no provider call

    @field_serializer("completion")
    def _as_sent(self, completion: Completion | None) -> dict[str, Any] | None:
        return None if completion is None else completion.wire()

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @property
    def content(self) -> str | None:
        """The first choice's text."""
        first = self.completion.first if self.completion else None
        return first.message.content if first else None

    @property
    def finish_reason(self) -> str | None:
        first = self.completion.first if self.completion else None
        return first.finish_reason if first else None

    @property
    def usage(self) -> Usage | None:
        return self.completion.usage if self.completion else None
