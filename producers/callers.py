"""FastAPI dependencies that say who is calling: every ``/v1`` route takes one of them."""

from __future__ import annotations

from typing import Annotated

from chatq.producers.aio import AsyncChatqClient
from chatq.producers.auth import Authenticator, Principal
from fastapi import Depends, Request


def gateway_client(request: Request) -> AsyncChatqClient:
    """The gateway's SDK client."""
    return request.app.state.client  # type: ignore[no-any-return]


async def client(request: Request) -> AsyncChatqClient:
    """``gateway_client`` as a dependency (async: FastAPI runs a plain one in a thread pool)."""
    return gateway_client(request)


async def caller(request: Request) -> Principal:
    """The authenticated caller (401 if auth is required and the credential is bad)."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(request.headers.get("authorization"))


async def admitted_caller(request: Request) -> Principal:
    """The caller, with one request counted against its tenant's quota (429 when spent).
    One dependency, not one on ``caller``: each level of FastAPI's dependency solving costs
    the gateway about 40 us a request (py-spy)."""
    principal = await caller(request)
    authenticator: Authenticator = request.app.state.authenticator
    await authenticator.admit(principal)
    return principal


Caller = Annotated[Principal, Depends(caller)]
AdmittedCaller = Annotated[Principal, Depends(admitted_caller)]
Client = Annotated[AsyncChatqClient, Depends(client)]
