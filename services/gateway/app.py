"""The FastAPI application: mounts every service's routes under /api/v1 behind JWT auth."""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DBAPIError

from services.gateway import admin, auth, events
from services.gateway.admin import ensure_bootstrap_admin
from services.gateway.fast_path import FastRoute, answer_fast, mount_fast_routes
from services.gateway.security import LoginThrottles, TokenVerifier, jwt_secret
from services.operations import health_response, metrics_response, readiness_response
from services.runtime import WORKERS, Runtime
from shared import metrics

log = structlog.get_logger(__name__)
API_PREFIX = "/api/v1"


def service_apis() -> list[ModuleType]:
    """Each service's `api` module (its `router`, and `fast_routes` if any), for the services
    that have REST routes."""
    modules = []
    for name in WORKERS:
        try:
            modules.append(importlib.import_module(f"services.{name}.api"))
        except ModuleNotFoundError as error:
            if error.name != f"services.{name}.api":
                raise
    return modules


def api_routers(apis: list[ModuleType]) -> list[APIRouter]:
    """The routers served under /api/v1: the gateway's own, then each service's."""
    return [auth.router, admin.router, events.router, *(api.router for api in apis)]


def create_app(runtime: Runtime, *, owns_runtime: bool = True) -> FastAPI:
    """`owns_runtime`: the app connects and closes the bus and stores (standalone `aietl gateway`);
    under `aietl up` the process runtime is shared with the workers and managed by the CLI."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owns_runtime:
            await runtime.broker.connect()
            runtime.start_relay()
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
    app.state.jwt_secret = jwt_secret(runtime.settings)
    app.state.tokens = TokenVerifier(app.state.jwt_secret)
    app.state.login_throttles = LoginThrottles.from_settings(runtime.settings)

    # Each router directly under the app (not through an intermediate /api/v1 router): FastAPI
    # matches a request again at every level of inclusion, and one level fewer is one walk fewer.
    apis = service_apis()
    for router in api_routers(apis):
        app.include_router(router, prefix=API_PREFIX)
    _add_operational_routes(app, runtime)
    _add_error_handlers(app)
    _document_message_errors(app)
    fast_routes = mount_fast_routes(API_PREFIX, apis)
    app.add_middleware(
        RequestGuard, max_body_bytes=runtime.settings.max_request_bytes, fast_routes=fast_routes
    )
    return app


def _document_message_errors(app: FastAPI) -> None:
    """Routes also answer 422 with a single message naming the field (`HTTPException(422, "...")`);
    the OpenAPI document says so, so that clients (and schemathesis) accept both shapes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError", {})
        detail = error.get("properties", {}).get("detail")
        if detail is not None and "anyOf" not in detail:
            error["properties"]["detail"] = {"anyOf": [detail, {"type": "string"}], "title": "Detail"}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_operational_routes(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """Liveness: the process answers."""
        return health_response()

    @app.get("/ready", tags=["operations"], responses={503: {}})
    async def ready() -> JSONResponse:
        """Readiness: every component this process depends on answers."""
        return await readiness_response(runtime)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        return metrics_response()


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        """422 naming each field; the offending input is not echoed (it may be a password)."""
        details = [
            {"loc": list(item.get("loc", ())), "msg": item.get("msg", ""), "type": item.get("type", "")}
            for item in error.errors()
        ]
        return JSONResponse({"detail": details}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(DBAPIError)
    async def unstorable(request: Request, error: DBAPIError) -> JSONResponse:
        """The database refused a value of the request (SQLSTATE class 22: out of range, NUL in
        text, ...): the caller's input, so a 422; the value itself is not echoed."""
        if not _is_data_error(error):
            return await unexpected(request, error)
        log.warning("request value refused by the database", path=request.url.path)
        return JSONResponse(
            {"detail": "a value in the request cannot be stored (out of range or invalid characters)"},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path, error_type=type(error).__name__)
        return JSONResponse({"detail": "internal error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)


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
    (`services.gateway.fast_path`) and records latency per route template."""

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
            response = JSONResponse(
                {"detail": f"request body exceeds {self.max_body_bytes} bytes"},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            )
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
        response = await answer_fast(fast, app_state.runtime, app_state.tokens, scope, body)
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
