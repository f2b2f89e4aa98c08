"""Latency-critical routes answered ahead of FastAPI's routing and dependency solving.

Measured on `POST /api/v1/advanced/features/get-online` (1 entity x 50 features): of ~280 us of
server time, route matching took ~45 us and dependency solving ~80 us, more than the Redis read
itself. A fast route answers only the happy path, with the very pieces of its documented route
(the authenticator, the project scope, the request model, the same answer function). On anything
else (no or bad token, a query parameter it does not know, an invalid body, any refusal or error)
it declines, and the request, body replayed, goes through the full route, which gives the
documented answer. A read may thus run twice when it fails; fast routes are for reads only (a
viewer may call them, as the full route's `ProjectReadDep` says).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel

from aietl.services.gateway.accounts import Authenticator
from aietl.services.gateway.deps import project_scope
from aietl.services.gateway.roles import Role
from aietl.services.runtime import Runtime

Answer = Callable[[Runtime, str, Any], Awaitable[Response]]


@dataclass(frozen=True)
class FastRoute:
    """`answer(runtime, project_id, body)` for a read whose only query parameter is `project_id`."""

    model: type[BaseModel]
    answer: Answer
    path: str = ""  # its route's path, as metrics label it; set by `mount_fast_routes`


def mount_fast_routes(prefix: str, apis: list[ModuleType]) -> dict[tuple[str, str], FastRoute]:
    """Each api module's `fast_routes` (paths relative to its router's prefix), keyed by (method,
    full path). Refuses one without a POST route of that path taking the same body model, so a fast
    route never answers for a route that does not exist."""
    mounted = {}
    for api in apis:
        documented = {
            route.path: route
            for route in api.router.routes
            if isinstance(route, APIRoute)
            and route.methods
            and "POST" in route.methods
            and route.body_field is not None
        }
        for relative, fast in getattr(api, "fast_routes", {}).items():
            path = api.router.prefix + relative
            route = documented.get(path)
            model: type[BaseModel] = fast.model
            if (
                route is None
                or route.body_field is None
                or route.body_field.field_info.annotation is not model
            ):
                raise RuntimeError(f"fast route {path} has no POST route taking {model.__name__}")
            mounted[("POST", prefix + path)] = FastRoute(model, fast.answer, route.path)
    return mounted


def _bearer_token(scope: dict[str, Any]) -> str | None:
    """The token as the route's `HTTPBearer` dependency reads it (FastAPI's own header parser)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, token = get_authorization_scheme_param(value.decode("latin-1"))
            return token if scheme.lower() == "bearer" and token else None
    return None


def _project_id(scope: dict[str, Any]) -> str | None:
    """`project_id` from the query; ValueError for any other parameter or a repeated one."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    if any(name != "project_id" for name, _ in pairs) or len(pairs) > 1:
        raise ValueError("the full route validates this query")
    return pairs[0][1] if pairs else None


async def answer_fast(
    route: FastRoute, runtime: Runtime, authenticator: Authenticator, scope: dict[str, Any], body: bytes
) -> Response | None:
    """The response, or None when the full route must answer."""
    token = _bearer_token(scope)
    if token is None:
        return None
    try:
        principal = await authenticator.principal(token)
        project = project_scope(principal, _project_id(scope), Role.viewer)
        return await route.answer(runtime, project, route.model.model_validate_json(body))
    except Exception:  # declining is the answer: the full route reports the problem
        return None
