"""Request dependencies in one place: runtime, DB session, the caller, and the project in scope.

Project scoping is a dependency, never repeated in handlers. A project the caller may not see is
answered with 404, exactly as a project that does not exist, so nothing leaks.

The dependencies are `async def` although they do not await: FastAPI runs a plain `def` dependency
in its thread pool, and three thread hand-offs per request cost more than a fast route itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.gateway.accounts import Authenticator, NotAuthenticated
from aietl.services.gateway.roles import Role
from aietl.services.gateway.security import Principal
from aietl.services.runtime import Runtime
from aietl.shared.errors import Invalid, Problem, pointer
from aietl.shared.events.base import ProjectId

_bearer = HTTPBearer(auto_error=False, description="JWT from POST /api/v1/auth/login")

Dependency = TypeVar("Dependency", bound=Callable[..., Any])

ERROR_RESPONSES: dict[Callable[..., Any], dict[int, str]] = {}
"""What a dependency may answer instead of the route, by status code: the app documents it on
every route that uses the dependency (`aietl.services.gateway.app`), so no route has to repeat it."""


ROLE_TOO_LOW: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller's role in the project is too low (the detail names the role needed)"}
}
"""`responses` of a route that checks a role in its handler (`require_role`), e.g. for a project
named in the body; a dependency's are documented without a word (`answers`)."""


def answers(responses: dict[int, str]) -> Callable[[Dependency], Dependency]:
    """Declare the error answers of a dependency (see `ERROR_RESPONSES`)."""

    def declare(dependency: Dependency) -> Dependency:
        ERROR_RESPONSES[dependency] = responses
        return dependency

    return declare


@dataclass(frozen=True)
class _QueryParameters:
    names: frozenset[str]
    repeatable: frozenset[str]  # those taking a list


_QUERY: dict[int, tuple[APIRoute, _QueryParameters]] = {}
"""By route identity (routes are not hashable). The routes in scope are the routers' own, shared
by every app including them, so this holds one entry per route of the code base."""


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_is_list(member) for member in get_args(annotation))
    return origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset)


def _query_parameters(dependant: Dependant) -> _QueryParameters:
    fields = []
    pending = [dependant]
    while pending:
        current = pending.pop()
        fields.extend(current.query_params)
        pending.extend(current.dependencies)
    return _QueryParameters(
        frozenset(field.alias for field in fields),
        frozenset(field.alias for field in fields if _is_list(field.field_info.annotation)),
    )


@answers({422: "A value of the request is invalid, or a query parameter the operation does not take"})
async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the route does not take, or a single-valued one given twice, is refused
    by name rather than ignored (a misspelt `projectid` would act in the caller's default project,
    and of two `project_id`s FastAPI takes the last). `project_id` itself is tolerated everywhere:
    clients send it with every call, and a route without it takes the project from its body."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    entry = _QUERY.get(id(route))
    if entry is None or entry[0] is not route:
        entry = _QUERY[id(route)] = (route, _query_parameters(route.dependant))
    parameters = entry[1]
    given = request.query_params.keys()
    unknown = sorted(set(given) - parameters.names - {"project_id"})
    if unknown:
        message = f"unknown query parameter: {', '.join(unknown)}"
        raise Invalid(message, problems=[Problem(pointer("query", name), "unknown") for name in unknown])
    repeated = sorted(
        {
            name
            for name in given
            if name not in parameters.repeatable and len(request.query_params.getlist(name)) > 1
        }
    )
    if repeated:
        message = f"query parameter given more than once: {', '.join(repeated)}"
        raise Invalid(
            message, problems=[Problem(pointer("query", name), "given more than once") for name in repeated]
        )


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.database.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


@answers({401: "No valid bearer token, or its user was deleted, disabled or changed password"})
async def current_principal(
    authenticator: AuthenticatorDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller named by the bearer token, with their rights as the database has them now."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("missing bearer token")
    try:
        return await authenticator.principal(credentials.credentials)
    except NotAuthenticated as error:
        raise unauthorized(str(error)) from None


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
        raise Invalid("project_id is required", at="/query/project_id")
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

    @answers(
        {
            403: "The caller's role in the project is too low (the detail names the role needed)",
            404: "No such project, or not one of the caller's",
            422: "`project_id` is required (the caller is in several projects)",
        }
    )
    async def project_dependency(
        request: Request,
        principal: PrincipalDep,
        project_id: Annotated[
            ProjectId | None,
            Query(description="Project to act in; defaults to the caller's only project."),
        ] = None,
    ) -> str:
        return project_scope(principal, project_id, minimum or minimum_role_for(request.method))

    return project_dependency


ProjectDep = Annotated[str, Depends(project_with_role())]
"""The project in scope, for a viewer on reads (GET) and a member on writes."""
ProjectReadDep = Annotated[str, Depends(project_with_role(Role.viewer))]
"""The project in scope for a read sent as a POST (its question is the body): viewers too."""


@answers({403: "Administrator role required"})
async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="administrator role required")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
