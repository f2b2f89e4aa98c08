"""Request dependencies in one place: runtime, DB session, the caller, and the project in scope.

Project scoping is a dependency, never repeated in handlers. A project the caller may not see is
answered with 404, exactly as a project that does not exist, so nothing leaks.

The dependencies are `async def` although they do not await: FastAPI runs a plain `def` dependency
in its thread pool, and three thread hand-offs per request cost more than a fast route itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.roles import Role
from services.gateway.security import Principal, TokenVerifier
from services.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="JWT from POST /api/v1/auth/login")


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.database.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("missing bearer token")
    tokens: TokenVerifier = request.app.state.tokens
    try:
        return tokens.verify(credentials.credentials)
    except jwt.ExpiredSignatureError:
        raise unauthorized("token expired") from None
    except jwt.InvalidTokenError:
        raise unauthorized("invalid token") from None


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def project_not_found(project_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"project {project_id!r} not found")


def require_role(principal: Principal, project_id: str, minimum: Role) -> str:
    """The project if the caller holds at least `minimum` in it; 404 when they are not in it (no
    difference from a missing project), 403 naming the role needed when theirs is lower."""
    role = principal.role_in(project_id)
    if role is None:
        raise project_not_found(project_id)
    if not role.at_least(minimum):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"role {minimum} or above required in project {project_id!r} (yours: {role})",
        )
    return project_id


def project_scope(principal: Principal, project_id: str | None, minimum: Role) -> str:
    """The project in scope: `project_id`, else the caller's only project; checked by `require_role`."""
    if project_id is None:
        if len(principal.projects) == 1:
            return require_role(principal, next(iter(principal.projects)), minimum)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="project_id is required")
    return require_role(principal, project_id, minimum)


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def minimum_role_for(method: str) -> Role:
    """Reads need a viewer, anything else (a write) a member."""
    return Role.viewer if method in READ_METHODS else Role.member


def project_with_role(minimum: Role | None = None) -> Callable[..., Awaitable[str]]:
    """A dependency answering the project in scope (query `project_id`) once the caller's role in it
    is at least `minimum`; by default what the HTTP method needs (`minimum_role_for`), so a new
    write route is closed to viewers without a word. A read that is a POST (a query with a body)
    says `Role.viewer`; a route needing more says so (`Depends(project_with_role(Role.maintainer))`)."""

    async def project_dependency(
        request: Request,
        principal: PrincipalDep,
        project_id: Annotated[
            str | None, Query(description="Project to act in; defaults to the caller's only project.")
        ] = None,
    ) -> str:
        return project_scope(principal, project_id, minimum or minimum_role_for(request.method))

    return project_dependency


ProjectDep = Annotated[str, Depends(project_with_role())]
"""The project in scope, for a viewer on reads (GET) and a member on writes."""
ProjectReadDep = Annotated[str, Depends(project_with_role(Role.viewer))]
"""The project in scope for a read sent as a POST (its question is the body): viewers too."""


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="administrator role required")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
