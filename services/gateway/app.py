"""The FastAPI application: mounts every service's routes under /api/v1 behind JWT auth."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aietl.services.console.web import mount_console
from aietl.services.drift import api as drift_api
from aietl.services.features import api as features_api
from aietl.services.gateway import admin, auth, events
from aietl.services.gateway.accounts import Authenticator
from aietl.services.gateway.admin import ensure_bootstrap_admin
from aietl.services.gateway.deps import ERROR_RESPONSES, refuse_unknown_query
from aietl.services.gateway.fast_path import FastRoute, answer_fast, mount_fast_routes
from aietl.services.gateway.security import use_password_hashing_of
from aietl.services.gateway.throttle import LoginThrottle
from aietl.services.operations import health_response, metrics_response, readiness_response
from aietl.services.ops import api as ops
from aietl.services.predict import api as predict_api
from aietl.services.runtime import Runtime
from aietl.services.templates import api as templates_api
from aietl.services.vector_sink import api as vector_sink_api
from aietl.shared import metrics
from aietl.shared.errors import ErrorBody, Invalid, ServiceError

log = structlog.get_logger(__name__)
API_PREFIX = "/api/v1"


def service_apis() -> list[ModuleType]:
    """Each service's `api` module (its `router`, and `fast_routes` if any), listed explicitly: what
    the gateway serves is read here, not discovered."""
    return [drift_api, features_api, templates_api, predict_api, vector_sink_api]


def api_routers(apis: list[ModuleType]) -> list[APIRouter]:
    """The routers served under /api/v1: the gateway's own, each service's, then operations'."""
    return [auth.router, admin.router, events.router, *(api.router for api in apis), ops.router]


def create_app(runtime: Runtime, *, owns_runtime: bool = True) -> FastAPI:
    """`owns_runtime`: the app connects and closes the bus and stores (standalone `aietl gateway`);
    under `aietl up` the process runtime is shared with the workers and managed by the CLI."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owns_runtime:
            await runtime.broker.connect()
            runtime.start_relay()
            runtime.start_heartbeat()
        await ensure_bootstrap_admin(runtime)
        try:
            yield
        finally:
            if owns_runtime:
                await runtime.broker.stop()
                await runtime.close()

    app = FastAPI(
        title="AI-ETL",
        version="0.1.0",
        description="Schema drift, feature store, pipeline templates, predictive maintenance and vector "
        "ingestion. Authenticate with `POST /api/v1/auth/login`, then send `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    runtime.add_role("gateway")
    use_password_hashing_of(runtime.settings)
    app.state.authenticator = Authenticator.from_settings(runtime.settings, runtime.database)
    app.state.login_throttle = LoginThrottle.from_settings(runtime.settings, runtime.database)

    # Each router directly under the app (not through an intermediate /api/v1 router): FastAPI
    # matches a request again at every level of inclusion, and one level fewer is one walk fewer.
    apis = service_apis()
    routers = api_routers(apis)
    for router in routers:
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(refuse_unknown_query)])
    _add_operational_routes(app, runtime)
    mount_console(app)
    _add_error_handlers(app)
    _document_errors(app, routers)
    fast_routes = mount_fast_routes(API_PREFIX, apis)
    app.add_middleware(
        RequestGuard, max_body_bytes=runtime.settings.max_request_bytes, fast_routes=fast_routes
    )
    return app


ERROR_SCHEMA = "HTTPError"
BODY_ANSWERS = {
    400: "The body could not be read",
    413: "The body is larger than AIETL_MAX_REQUEST_BYTES",
    422: "A value of the request is invalid (the detail names it)",
}
PATH_ANSWERS = {404: "No such resource (in the project in scope)"}


def error_answers(route: APIRoute) -> dict[int, str]:
    """Every error a route can answer besides its own: those its dependencies declare
    (`deps.answers`: 401 without a valid token, 403/404 for roles and projects, ...), a body's
    (400, 413, 422) and a path parameter's (404)."""
    found: dict[int, str] = dict(ERROR_RESPONSES[refuse_unknown_query])  # every router has it
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        found |= ERROR_RESPONSES.get(dependant.call, {}) if dependant.call is not None else {}
        pending.extend(dependant.dependencies)
    if route.body_field is not None:
        found |= BODY_ANSWERS
    if route.dependant.path_params:
        found |= PATH_ANSWERS
    return found


def _document_errors(app: FastAPI, routers: list[APIRouter]) -> None:
    """The OpenAPI document lists every status an operation can answer, each with the one error
    body (`ErrorBody`), so that clients (and schemathesis' conformance checks) can rely on it."""
    build = app.openapi
    routes = [
        (API_PREFIX + route.path_format, route)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]

    def openapi() -> dict[str, Any]:
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        # FastAPI's own 422 schema (a list of {loc, msg, type}) is not what the API answers
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        definitions = ErrorBody.model_json_schema(
            ref_template="#/components/schemas/{model}", mode="serialization"
        )
        schemas.update(definitions.pop("$defs", {}))
        schemas[ERROR_SCHEMA] = definitions
        error_body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
        for path, route in routes:
            if path not in schema["paths"]:
                continue
            for method in route.methods or ():
                operation = schema["paths"][path][method.lower()]
                responses = operation["responses"]
                for code, description in error_answers(route).items():
                    response = responses.setdefault(str(code), {"description": description})
                    if response.get("description") in (None, "", "Additional Response"):
                        response["description"] = description
                for code, response in responses.items():  # also those a route declares itself
                    if int(code) >= 400:
                        response["content"] = error_body
                operation["responses"] = dict(sorted(responses.items()))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_operational_routes(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """Liveness: the process answers."""
        return health_response()

    @app.get("/ready", tags=["operations"], responses={503: {"description": "A component does not answer"}})
    async def ready() -> JSONResponse:
        """Readiness: every component this process depends on answers."""
        return await readiness_response(runtime)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        return metrics_response()


def error_response(
    error: ServiceError, status_code: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error body, with the error's own status unless told."""
    return JSONResponse(
        error.body().model_dump(mode="json"), status_code=status_code or error.status, headers=headers
    )


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answer has one body (`aietl.shared.errors.ErrorBody`): the services raise the error
    family, FastAPI's validation and HTTP errors are put in the same shape here."""

    @app.exception_handler(ServiceError)
    async def refused(_request: Request, error: ServiceError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        """The gateway's own refusals (401, 403, 404 of a project, 405 ...), headers kept."""
        return error_response(ServiceError(str(error.detail)), error.status_code, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        """422 naming each field; the offending input is not echoed (it may be a password)."""
        return error_response(Invalid.of_fields(error.errors()))

    @app.exception_handler(DBAPIError)
    async def unstorable(request: Request, error: DBAPIError) -> JSONResponse:
        """The database refused a value of the request (SQLSTATE class 22: out of range, NUL in
        text, ...): the caller's input, so a 422; the value itself is not echoed."""
        if not _is_data_error(error):
            return await unexpected(request, error)
        log.warning("request value refused by the database", path=request.url.path)
        return error_response(
            Invalid("a value in the request cannot be stored (out of range or invalid characters)")
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path, error_type=type(error).__name__)
        return error_response(ServiceError("internal error"))


def _is_data_error(error: BaseException) -> bool:
    """A DB-API data exception anywhere in the chain (asyncpg, sqlite3, psycopg alike)."""
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            return False
        if type(seen).__name__.endswith("DataError") or str(getattr(seen, "sqlstate", "")).startswith("22"):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


class RequestGuard:
    """Pure ASGI middleware: refuses oversized bodies early, answers fast routes
    (`aietl.services.gateway.fast_path`) and records latency per route template."""

    def __init__(
        self, app: Any, max_body_bytes: int, fast_routes: dict[tuple[str, str], FastRoute] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.fast_routes = fast_routes or {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            too_large = ServiceError(f"request body exceeds {self.max_body_bytes} bytes")
            response = error_response(too_large, status.HTTP_413_CONTENT_TOO_LARGE)
            await response(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_and_record(message: dict[str, Any]) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            fast = self.fast_routes.get((scope["method"], scope["path"])) if length is not None else None
            if fast is None or not await self._answer_fast(fast, scope, receive, send_and_record):
                await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            metrics.HTTP_REQUEST_SECONDS.labels(
                method=scope["method"], route=getattr(route, "path", "unmatched"), status=str(status_code)
            ).observe(time.perf_counter() - started)

    async def _answer_fast(self, fast: FastRoute, scope: dict[str, Any], receive: Any, send: Any) -> bool:
        """Read the body and answer through the fast route; when it declines, hand the request to the
        app with the body replayed (its `receive` yields it first). True once the request has been
        answered either way; False when the client went away before its body arrived."""
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False  # the client went away: the app sees the rest of the conversation
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        app_state = scope["app"].state
        response = await answer_fast(fast, app_state.runtime, app_state.authenticator, scope, body)
        if response is not None:
            scope["route"] = fast
            await response(scope, receive, send)
            return True
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
        return True
