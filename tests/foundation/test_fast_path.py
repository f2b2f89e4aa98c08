"""Fast routes: the happy path is answered ahead of FastAPI with the route's own code; anything
else declines, and the full route answers with the body replayed, exactly as documented."""

from __future__ import annotations

import json
import types
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

import aietl.services.gateway.app as gateway_app
from aietl.services.gateway.accounts import Authenticator
from aietl.services.gateway.app import service_apis
from aietl.services.gateway.fast_path import FastRoute, answer_fast, mount_fast_routes
from aietl.services.runtime import Runtime

ONLINE = "/api/v1/advanced/features/get-online"
Headers = dict[str, str]


@pytest.fixture
async def feature(client: httpx.AsyncClient, project_user: tuple[str, Headers]) -> tuple[str, Headers]:
    """A project whose user wrote `clicks` = 3 for entity `u1`: (project_id, headers)."""
    project, headers = project_user
    registered = await client.post(
        "/api/v1/advanced/features/register",
        json={"name": "clicks", "feature_type": "int64", "entity": "user", "ttl_seconds": 3600},
        headers=headers,
    )
    assert registered.status_code == 201, registered.text
    written = await client.post(
        "/api/v1/advanced/features/write",
        json={
            "features": [
                {"feature_name": "clicks", "entity_id": "u1", "value": 3, "timestamp": "2030-01-01T00:00:00Z"}
            ]
        },
        headers=headers,
    )
    assert written.status_code == 200, written.text
    return project, headers


def _scope(headers: Headers, query: str = "") -> dict[str, Any]:
    return {
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "query_string": query.encode(),
    }


def _online_route() -> FastRoute:
    return mount_fast_routes("/api/v1", service_apis())[("POST", ONLINE)]


async def test_happy_path_is_answered_and_everything_else_declines(
    runtime: Runtime, feature: tuple[str, Headers]
) -> None:
    project, headers = feature
    route, tokens = _online_route(), Authenticator.from_settings(runtime.settings, runtime.database)
    good = json.dumps({"feature_names": ["clicks"], "entity_ids": ["u1"]}).encode()
    answered = await answer_fast(route, runtime, tokens, _scope(headers, f"project_id={project}"), good)
    assert answered is not None and answered.status_code == 200
    assert json.loads(bytes(answered.body))["feature_vectors"][0]["features"] == {"clicks": 3}
    token = headers["Authorization"].removeprefix("Bearer ")
    declined = [
        (_scope({}), good),  # no token
        (_scope({"Authorization": f"Basic {token}"}), good),  # not a bearer token
        (_scope({"Authorization": "Bearer not-a-jwt"}), good),
        (_scope(headers, "project_id=someone-else"), good),  # not the caller's project
        (_scope(headers, f"project_id={project}&verbose=1"), good),  # a parameter it does not know
        (_scope(headers), b'{"feature_names": [], "entity_ids": ["u1"]}'),  # invalid body
        (_scope(headers), b"{not json"),
        (_scope(headers), b'{"feature_names": ["unknown"], "entity_ids": ["u1"]}'),  # refused: 404
    ]
    for scope, body in declined:
        assert await answer_fast(route, runtime, tokens, scope, body) is None, (scope, body)


async def test_declined_requests_reach_the_full_route_with_their_body(
    client: httpx.AsyncClient, feature: tuple[str, Headers], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the app: the fast route answers the read, and an invalid body, read by the fast route
    first, still gets FastAPI's validation answer naming the field."""
    _, headers = feature
    answers: list[bool] = []

    async def watched(*args: Any) -> Any:
        response = await answer_fast(*args)
        answers.append(response is not None)
        return response

    monkeypatch.setattr(gateway_app, "answer_fast", watched)
    read = await client.post(
        ONLINE, json={"feature_names": ["clicks"], "entity_ids": ["u1"]}, headers=headers
    )
    assert read.status_code == 200 and read.json()["feature_vectors"][0]["features"] == {"clicks": 3}
    invalid = await client.post(ONLINE, json={"feature_names": [], "entity_ids": ["u1"]}, headers=headers)
    assert invalid.status_code == 422
    assert [item["pointer"] for item in invalid.json()["errors"]] == ["/body/feature_names"]
    unknown = await client.post(
        ONLINE, json={"feature_names": ["nope"], "entity_ids": ["u1"]}, headers=headers
    )
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    assert answers == [True, False, False]
    metrics = (await client.get("/metrics")).text  # both labelled as the route, as FastAPI labels it
    for status in (200, 422):
        assert f'route="/advanced/features/get-online",status="{status}"' in metrics


class Asked(BaseModel):
    name: str


class Other(BaseModel):
    name: str


def test_a_fast_route_needs_a_documented_route_with_the_same_body() -> None:
    router = APIRouter(prefix="/things")

    @router.post("/read")
    async def read(body: Asked) -> dict[str, str]:
        return {"name": body.name}

    async def answer(_runtime: Runtime, _project: str, body: Any) -> Any:
        return body

    api = types.SimpleNamespace(router=router, fast_routes={"/read": FastRoute(Asked, answer)})
    mounted = mount_fast_routes("/api/v1", [api])  # type: ignore[list-item]
    assert mounted[("POST", "/api/v1/things/read")].path == "/things/read"
    for fast_routes in ({"/read": FastRoute(Other, answer)}, {"/missing": FastRoute(Asked, answer)}):
        api = types.SimpleNamespace(router=router, fast_routes=fast_routes)
        with pytest.raises(RuntimeError, match="has no POST route"):
            mount_fast_routes("/api/v1", [api])  # type: ignore[list-item]
