"""Request dependencies in one place: runtime, DB session, the caller, and the project in scope.

Project scoping is a dependency, never repeated in handlers. A project the caller may not see is
answered with 404, exactly as a project that does not exist, so nothing leaks.

The dependencies are `async def` although they do not await: FastAPI runs a plain `def` dependency
in its thread pool, and three thread hand-offs per request cost more than a fast route itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.security import Principal, TokenVerifier
from services.runtime import Runtime
from shared.events.base import ProjectId

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


def require_project(principal: Principal, project_id: str) -> str:
    """The project if the caller may act in it; 404 otherwise (no difference from a missing one)."""
    if not principal.can_access(project_id):
        raise project_not_found(project_id)
    return project_id


def project_scope(principal: Principal, project_id: str | None = None) -> str:
    """The project in scope: `project_id` if the caller may act in it, else the caller's only project."""
    if project_id is None:
        if len(principal.projects) == 1:
            return next(iter(principal.projects))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="project_id is required")
    return require_project(principal, project_id)


async def _project_dependency(
    principal: PrincipalDep,
    project_id: Annotated[
        ProjectId | None,
        Query(description="Project to act in; defaults to the caller's only project."),
    ] = None,
) -> str:
    return project_scope(principal, project_id)


ProjectDep = Annotated[str, Depends(_project_dependency)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="administrator role required")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
