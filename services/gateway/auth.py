"""Login, the caller's identity, and changing one's own password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.gateway.accounts import Authenticator, load_account
from aietl.services.gateway.deps import PrincipalDep, SessionDep
from aietl.services.gateway.roles import Role
from aietl.services.gateway.security import DUMMY_HASH, Password, hashed_password, password_matches
from aietl.services.gateway.tables import User
from aietl.services.gateway.throttle import Attempt, LoginThrottle, Refused, client_address

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[SecretStr, Field(min_length=1, max_length=1024)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class Me(BaseModel):
    username: str
    is_admin: bool
    projects: list[str]
    roles: dict[str, Role]


class PasswordChange(BaseModel):
    current_password: Annotated[SecretStr, Field(min_length=1, max_length=1024)]
    new_password: Password


async def _token_for(request: Request, session: AsyncSession, user_id: int) -> TokenResponse:
    """A token naming the user as the database has them now."""
    account = await load_account(session, user_id)
    if account is None:  # deleted meanwhile
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid username or password")
    authenticator: Authenticator = request.app.state.authenticator
    return TokenResponse(access_token=authenticator.issue(account), expires_in=authenticator.ttl_seconds)


async def _attempt(request: Request, username: str) -> Attempt:
    """The login attempt on record, or 429 while this client must wait (`aietl.services.gateway.throttle`)."""
    throttle: LoginThrottle = request.app.state.login_throttle
    peer = request.client.host if request.client else None
    client = client_address(peer, request.headers.getlist("x-forwarded-for"), throttle.trusted_proxies)
    try:
        return await throttle.begin(username, client)
    except Refused as refused:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed logins; try again later",
            headers={"Retry-After": str(int(refused.retry_after) + 1)},
        ) from None


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={
        401: {"description": "Wrong username or password, or a disabled user"},
        429: {"description": "Too many failed logins from this client (see Retry-After)"},
    },
)
async def login(body: LoginRequest, request: Request, session: SessionDep) -> TokenResponse:
    """A token for the user; a disabled user is refused like a wrong password."""
    attempt = await _attempt(request, body.username)
    user = await session.scalar(select(User).where(User.username == body.username))
    valid = await password_matches(user.password_hash if user else DUMMY_HASH, body.password)
    if user is None or not valid or user.disabled:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid username or password")
    await request.app.state.login_throttle.succeeded(attempt)
    return await _token_for(request, session, user.id)


@router.get("/me", response_model=Me)
async def me(principal: PrincipalDep) -> Me:
    return Me(
        username=principal.username,
        is_admin=principal.is_admin,
        projects=sorted(principal.projects),
        roles=dict(sorted(principal.roles.items())),
    )


@router.post(
    "/password",
    response_model=TokenResponse,
    responses={
        403: {"description": "The current password is wrong"},
        429: {"description": "Too many failed attempts from this client (see Retry-After)"},
    },
)
async def change_password(
    body: PasswordChange, principal: PrincipalDep, request: Request, session: SessionDep
) -> TokenResponse:
    """Change one's own password: every token issued before stops working; a new one is returned.
    A wrong current password counts as a failed login (a stolen token is no password oracle)."""
    attempt = await _attempt(request, principal.username)
    user = await session.get(User, principal.user_id)
    if user is None or not await password_matches(user.password_hash, body.current_password):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="current password is wrong")
    await request.app.state.login_throttle.succeeded(attempt)
    user.password_hash = await hashed_password(body.new_password)
    user.token_version += 1
    await session.commit()
    request.app.state.authenticator.forget(user.id)
    return await _token_for(request, session, user.id)
