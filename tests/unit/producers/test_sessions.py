"""How a session's request is built: profile, summary, recent turns, new messages; compaction
keeps every request within the budget. In-memory stand-ins for the Redis stores."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
from chatq.producers.sessions import SUMMARISE, Conversations, tokens
from chatq.shared.errors import InvalidJob
from chatq.shared.jobs import ChatMessage, ChatRequest, Role
from chatq.shared.sessions import Session, profile_message
from chatq.shared.settings import Settings

BUDGET = 300


class Sessions:
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.redis = self

    def lock(self, *args, **kwargs):
        return nullcontext()

    def touch(self, tenant, session_id, *, ttl_kind, user) -> None:
        self.sessions.setdefault(session_id, Session(id=session_id))

    def load(self, tenant, session_id) -> Session:
        return self.sessions.get(session_id, Session(id=session_id)).model_copy(deep=True)

    def fold(self, tenant, session_id, summary, turns) -> None:
        session = self.sessions[session_id]
        session.summary, session.turns = summary, session.turns[turns:]
        session.summarised += turns

    def add(self, session_id: str, *messages: ChatMessage) -> None:
        self.sessions[session_id].turns.extend(messages)


class Users:
    def __init__(self, profiles: dict[str, dict[str, str]] | None = None) -> None:
        self.profiles = profiles or {}

    def profile(self, tenant, user) -> dict[str, str]:
        return self.profiles.get(user, {})


def conversations(sessions: Sessions, users: Users | None = None) -> tuple[Conversations, list]:
    asked: list[ChatRequest] = []

    def summarise(request: ChatRequest, tenant: str | None) -> str:
        asked.append(request)
        return "they talked about items"

    settings = Settings(_env_file=None, session_token_budget=BUDGET)
    return Conversations(settings, sessions, users or Users(), summarise), asked


def user(text: str) -> ChatMessage:
    return ChatMessage(role=Role.user, content=text)


def request(text: str, **fields) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": text}], **fields)


def test_history_goes_before_the_new_message_and_marks_where_it_starts():
    sessions = Sessions()
    built_convo, _ = conversations(sessions)
    sessions.touch(None, "s", ttl_kind=None, user=None)
    sessions.add("s", user("hi"), ChatMessage(role=Role.assistant, content="hello"))
    built, new_from = built_convo.build(request("how are you?", session_id="s"), None)
    assert [m.text() for m in built.messages] == ["hi", "hello", "how are you?"]
    assert new_from == 2


def test_a_profile_is_a_system_message_even_without_a_session():
    users = Users({"u1": {"name": "Ana"}})
    built_convo, _ = conversations(Sessions(), users)
    built, new_from = built_convo.build(request("hi", user="u1"), None)
    assert built.messages[0] == profile_message({"name": "Ana"}) and new_from is None


def test_a_long_history_is_compacted_and_every_request_fits_the_budget():
    sessions = Sessions()
    built_convo, asked = conversations(sessions)
    sessions.touch(None, "long", ttl_kind=None, user=None)
    for turn in range(60):
        sessions.add(
            "long",
            user(f"turn {turn} says item {turn} costs {turn} coins"),
            ChatMessage(role=Role.assistant, content=f"noted item {turn}"),
        )
    built, _ = built_convo.build(request("what did item 3 cost?", session_id="long"), None)
    assert tokens(built.messages) <= BUDGET
    assert built.messages[0].text().startswith("Summary of the conversation so far:")
    assert asked and all(r.messages[0].content == SUMMARISE for r in asked)
    assert all(tokens(r.messages) <= BUDGET for r in asked)
    assert sessions.sessions["long"].summarised > 0


def test_a_new_message_larger_than_half_the_budget_is_refused():
    sessions = Sessions()
    built_convo, _ = conversations(sessions)
    with pytest.raises(InvalidJob, match="session turn may take at most"):
        built_convo.build(request("word " * 400, session_id="s"), None)
