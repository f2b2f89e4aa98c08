"""Login and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy import select

from services.gateway.deps import PrincipalDep, SessionDep
from services.gateway.roles import Role
from services.gateway.security import DUMMY_HASH, Principal, issue_token, verify_password
from services.gateway.tables import Membership, User

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


async def load_principal(session: SessionDep, user: User) -> Principal:
    memberships = await session.execute(
        select(Membership.project_id, Membership.role).where(Membership.user_id == user.id)
    )
    return Principal(user.id, user.username, user.is_admin, dict(memberships.tuples().all()))


@router.post("/login", response_model=TokenResponse, responses={401: {}, 429: {}})
async def login(body: LoginRequest, request: Request, session: SessionDep) -> TokenResponse:
    settings = request.app.state.runtime.settings
    throttles = request.app.state.login_throttles
    client = request.client.host if request.client else "unknown"
    wait = max(throttles.per_user.retry_after(body.username), throttles.per_client.retry_after(client))
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed logins; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = await session.scalar(select(User).where(User.username == body.username))
    password = body.password.get_secret_value()
    valid = verify_password(user.password_hash if user else DUMMY_HASH, password)
    if user is None or not valid:
        throttles.per_user.record_failure(body.username)
        throttles.per_client.record_failure(client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid username or password")
    throttles.per_user.reset(body.username)
    principal = await load_principal(session, user)
    token = issue_token(principal, request.app.state.jwt_secret, settings.jwt_ttl_seconds)
    return TokenResponse(access_token=token, expires_in=settings.jwt_ttl_seconds)


@router.get("/me", response_model=Me)
async def me(principal: PrincipalDep) -> Me:
    return Me(
        username=principal.username,
        is_admin=principal.is_admin,
        projects=sorted(principal.projects),
        roles=dict(sorted(principal.roles.items())),
    )
