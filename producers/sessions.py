"""Building each request of a conversation: the user's profile, the session's summary and
recent turns, then the caller's new messages; compacted to stay within the token budget.

When the history would pass ``CHATQ_SESSION_TOKEN_BUDGET`` prompt tokens, its older turns are
summarised by a chat job sent through the same queue (each summarising request within the
budget too), and only the recent turns stay verbatim. So no request ever sent to the provider
is larger than the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatq.shared import keys
from chatq.shared.errors import InvalidJob
from chatq.shared.jobs import ChatMessage, ChatRequest, Role
from chatq.shared.sessions import Session, SessionStore, UserStore, profile_message
from chatq.shared.settings import Settings
from chatq.shared.tokens import count_prompt_tokens
from redis.exceptions import LockError

SUMMARY_SHARE = 4  # a summary may take up to a quarter of the budget
SUMMARISE = (
    "You keep the memory of a conversation. Rewrite the summary so far and the new turns "
    "below into one brief summary: names, facts, preferences, decisions and open questions. "
    "Reply with the summary only."
)
Summarise = Callable[[ChatRequest, str | None], str]  # (request, tenant) -> the answer


def tokens(messages: Sequence[ChatMessage]) -> int:
    return count_prompt_tokens(m.prompt_text() for m in messages)


def summary_message(summary: str) -> ChatMessage:
    return ChatMessage(role=Role.system, content=f"Summary of the conversation so far: {summary}")


class Conversations:
    def __init__(
        self, settings: Settings, sessions: SessionStore, users: UserStore, summarise: Summarise
    ):
        self.settings = settings
        self.sessions = sessions
        self.users = users
        self.summarise = summarise
        self.budget = settings.session_token_budget

    def build(self, request: ChatRequest, tenant: str | None) -> tuple[ChatRequest, int | None]:
        """The request to send, and the index of the caller's new messages in it (None
        outside a session)."""
        profile = (
            profile_message(self.users.profile(tenant, request.user)) if request.user else None
        )
        system = [m for m in request.messages if m.role is Role.system]
        new = [m for m in request.messages if m.role is not Role.system]
        head = [*system, *([profile] if profile else [])]
        if request.session_id is None:
            if profile is None:
                return request, None
            return request.model_copy(update={"messages": [*head, *new]}), None
        session_id = request.session_id
        self.sessions.touch(tenant, session_id, ttl_kind=request.session_ttl, user=request.user)
        fixed = tokens([*head, *new])
        if fixed > self.budget // 2:
            raise InvalidJob(
                f"The new messages take {fixed} prompt tokens; a session turn may take at most "
                f"{self.budget // 2} (half of CHATQ_SESSION_TOKEN_BUDGET={self.budget}). Send "
                "a shorter message, or no session_id.",
                param="messages",
            )
        session = self.sessions.load(tenant, session_id)
        if tokens(self._assemble(head, session, new)) > self.budget:
            session = self._compact(tenant, session, request, room=self.budget - fixed)
        messages = self._assemble(head, session, new)
        return request.model_copy(update={"messages": messages}), len(messages) - len(new)

    @staticmethod
    def _assemble(
        head: list[ChatMessage], session: Session, new: list[ChatMessage]
    ) -> list[ChatMessage]:
        summary = [summary_message(session.summary)] if session.summary else []
        return [*head, *summary, *session.turns, *new]

    def _compact(
        self, tenant: str | None, session: Session, request: ChatRequest, *, room: int
    ) -> Session:
        """Folds the older turns into the summary, keeping as many recent turns verbatim as
        fit ``room`` tokens beside a summary of the largest size allowed."""
        lock = self.sessions.redis.lock(
            keys.session_key(tenant, session.id) + ":compacting", timeout=120, blocking_timeout=120
        )
        try:
            with lock:
                session = self.sessions.load(tenant, session.id)  # another may have compacted
                cap = self.budget // SUMMARY_SHARE
                # Recent turns keep half the room left, so the next turns fit for a while
                # before the next compaction.
                room_for_turns = (room - cap - tokens([summary_message("")])) // 2
                keep = 0
                while (
                    keep < len(session.turns)
                    and tokens(session.turns[len(session.turns) - keep - 1 :]) <= room_for_turns
                ):
                    keep += 1
                # A tool result stays with the call it answers: both kept, or both folded.
                while keep and session.turns[len(session.turns) - keep].role is Role.tool:
                    keep -= 1
                older = session.turns[: len(session.turns) - keep]
                summary = self._summarise(session.summary, older, request, cap, tenant)
                self.sessions.fold(tenant, session.id, summary, len(older))
                return session.model_copy(
                    update={"summary": summary, "turns": session.turns[len(older) :]}
                )
        except LockError:  # the lock lapsed mid-way: what was folded is folded; carry on
            return self.sessions.load(tenant, session.id)

    def _summarise(
        self,
        summary: str,
        turns: list[ChatMessage],
        request: ChatRequest,
        cap: int,
        tenant: str | None,
    ) -> str:
        """The summary with ``turns`` folded in, one budget-sized request at a time."""
        start = 0
        while start < len(turns):
            end = start + 1
            while (
                end < len(turns)
                and tokens(self._prompt(summary, turns[start : end + 1])) <= self.budget
            ):
                end += 1
            chunk = turns[start:end]
            if tokens(self._prompt(summary, chunk)) > self.budget:  # one turn too long alone
                chunk = [_shortened(chunk[0], self.budget // 2)]
            summary = self.summarise(
                ChatRequest(
                    model=request.model,
                    messages=self._prompt(summary, chunk),
                    max_tokens=cap,
                    temperature=0,
                    priority=request.priority,
                ),
                tenant,
            )
            start = end
        return summary

    @staticmethod
    def _prompt(summary: str, turns: Sequence[ChatMessage]) -> list[ChatMessage]:
        lines = [f"{m.role.value}: {m.prompt_text()}" for m in turns]
        text = f"Summary so far: {summary or '(none)'}\n\nNew turns:\n" + "\n".join(lines)
        return [
            ChatMessage(role=Role.system, content=SUMMARISE),
            ChatMessage(role=Role.user, content=text),
        ]


def _shortened(message: ChatMessage, max_tokens: int) -> ChatMessage:
    words = message.text().split()
    while words and tokens([ChatMessage(role=message.role, content=" ".join(words))]) > max_tokens:
        words = words[: len(words) * 3 // 4]
    return ChatMessage(role=message.role, content=" ".join(words) + " ...")
