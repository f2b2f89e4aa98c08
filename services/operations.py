"""Liveness, readiness and Prometheus metrics: the same three endpoints on the gateway and on every
worker. Starlette only, so a worker image needs none of the gateway's dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aietl.services.runtime import Runtime

READINESS_TIMEOUT_SECONDS = 3.0


def health_response() -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def component_states(runtime: Runtime) -> dict[str, str]:
    """Each component this process depends on: "ok", or "error: <type>" when it does not answer."""
    names = list(runtime.readiness)
    results = await asyncio.gather(*(_check(runtime.readiness[name]) for name in names))
    return dict(zip(names, results, strict=True))


def all_ok(components: dict[str, str]) -> bool:
    return all(state == "ok" for state in components.values())


async def readiness_response(runtime: Runtime) -> JSONResponse:
    """200 when every component this process depends on answers, 503 naming the ones that do not."""
    components = await component_states(runtime)
    healthy = all_ok(components)
    return JSONResponse(
        {"status": "ready" if healthy else "not_ready", "components": components},
        status_code=200 if healthy else 503,
    )


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _check(probe: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(probe(), READINESS_TIMEOUT_SECONDS)
    except Exception as error:
        return f"error: {type(error).__name__}"
    return "ok"


def operations_app(runtime: Runtime) -> Starlette:
    """The app a worker serves on its metrics port."""

    async def health(_request: Request) -> Response:
        return health_response()

    async def ready(_request: Request) -> Response:
        return await readiness_response(runtime)

    async def prometheus(_request: Request) -> Response:
        return metrics_response()

    return Starlette(routes=[Route("/health", health), Route("/ready", ready), Route("/metrics", prometheus)])
