"""Sessions and users on the gateway: read or end a conversation, keep a user's profile,
erase a user. Every id is scoped to the caller's tenant."""

from __future__ import annotations

from typing import Annotated, Any

from chatq.producers.callers import Caller
from chatq.shared import keys
from chatq.shared.errors import short
from chatq.shared.jobs import SAFE_ID
from chatq.shared.sessions import SessionNotFound, SessionStore, UserStore
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

router = APIRouter()
Id = Annotated[str, Path(min_length=1, max_length=200, pattern=SAFE_ID)]


def _sessions(request: Request) -> SessionStore:
    return request.app.state.sessions  # type: ignore[no-any-return]


def _users(request: Request) -> UserStore:
    return request.app.state.users  # type: ignore[no-any-return]


class Profile(BaseModel):
    """Attributes of one end user, added to the system prompt of their requests."""

    attributes: dict[
        Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=500)]
    ] = Field(default_factory=dict, max_length=50)


@router.get("/v1/sessions/{session_id}")
def get_session(request: Request, session_id: Id, who: Caller) -> dict[str, Any]:
    """The conversation: its summary and the turns kept verbatim."""
    store = _sessions(request)
    try:
        session = store.get(who.tenant, session_id)
    except SessionNotFound:
        raise _no_session(session_id) from None
    ttl = store.redis.ttl(keys.session_key(who.tenant, session_id))
    return {
        "id": session.id,
        "object": "chat.session",
        "summary": session.summary or None,
        "summarised_turns": session.summarised,
        "turns": [m.model_dump(exclude_none=True) for m in session.turns],
        "user": session.user,
        "expires_in": max(ttl, 0),
    }


@router.delete("/v1/sessions/{session_id}")
def delete_session(request: Request, session_id: Id, who: Caller) -> dict[str, Any]:
    if not _sessions(request).delete(who.tenant, session_id):
        raise _no_session(session_id)
    return {"id": session_id, "object": "chat.session", "deleted": True}


def _no_session(session_id: str) -> SessionNotFound:
    return SessionNotFound(f"No session with id {short(session_id)}.", param="session_id")


@router.put("/v1/users/{user_id}/profile")
def put_profile(request: Request, user_id: Id, body: Profile, who: Caller) -> Profile:
    """Replaces what is kept about the user; it is attached to their requests (``user``)."""
    _users(request).set_profile(who.tenant, user_id, body.attributes)
    return body


@router.get("/v1/users/{user_id}/profile")
def get_profile(request: Request, user_id: Id, who: Caller) -> Profile:
    return Profile(attributes=_users(request).profile(who.tenant, user_id))


@router.delete("/v1/users/{user_id}")
def erase_user(request: Request, user_id: Id, who: Caller) -> dict[str, Any]:
    """Erases the user: sessions, profile, jobs and the answers their jobs cached."""
    erased = _users(request).erase(who.tenant, user_id)
    return {"id": user_id, "object": "user", "deleted": True, "erased": erased}
