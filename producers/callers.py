"""FastAPI dependencies that say who is calling: every ``/v1`` route takes one of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from producers.aio import AsyncChatqClient
from producers.auth import Authenticator, Principal


async def client(request: Request) -> AsyncChatqClient:
    """The gateway's SDK client (async: FastAPI runs a plain function in a thread pool)."""
    return request.app.state.client  # type: ignore[no-any-return]


async def caller(request: Request) -> Principal:
    """The authenticated caller (401 if auth is required and the credential is bad)."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(request.headers.get("authorization"))


async def admitted_caller(
    request: Request, principal: Annotated[Principal, Depends(caller)]
) -> Principal:
    """The caller, with one request counted against its tenant's quota (429 when spent)."""
    authenticator: Authenticator = request.app.state.authenticator
    await authenticator.admit(principal)
    return principal


Caller = Annotated[Principal, Depends(caller)]
AdmittedCaller = Annotated[Principal, Depends(admitted_caller)]
Client = Annotated[AsyncChatqClient, Depends(client)]
