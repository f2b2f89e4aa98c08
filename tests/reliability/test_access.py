"""Access control over the whole gateway, enumerated from its routes rather than listed by hand.

- every route but the public ones answers 401 without a token, and with an expired, tampered,
  foreign-signed, unsigned or non-bearer one;
- a project the caller is not in is indistinguishable from one that does not exist (404, never 403),
  for every route scoped by `project_id`, and for resources addressed by id;
- login guessing is throttled per user and per client, and a throttled user cannot log in even with
  the right password until the window passes.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from services.gateway.app import create_app
from services.gateway.events import INBOUND
from services.gateway.security import ALGORITHM
from services.runtime import Runtime
from tests.conftest import JWT_SECRET
from tests.foundation.test_contracts import EXAMPLES

PUBLIC = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("HEAD", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("HEAD", "/redoc"),
    ("HEAD", "/openapi.json"),
    ("POST", "/api/v1/auth/login"),
}
WRITES = {"POST", "PUT", "PATCH"}


@pytest.fixture
async def gateway(runtime: Runtime) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A gateway app of its own: its login throttle must not lock out the other tests' logins."""
    app = create_app(runtime, owns_runtime=False)
    transport = httpx.ASGITransport(app=app, client=(f"10.9.{uuid.uuid4().int % 250}.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield app, http


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (method, path, OpenAPI operation) the app serves; routes outside OpenAPI get `{}`."""
    found = [
        (method.upper(), path, operation)
        for path, methods in app.openapi()["paths"].items()
        for method, operation in methods.items()
    ]
    for route in app.routes:
        if isinstance(route, Route) and not isinstance(route, APIRoute):
            found.extend((method, route.path, {}) for method in sorted(route.methods or ()))
    return found


def concrete(path: str) -> str:
    """The path with every `{param}` filled in with something that exists nowhere."""
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "no-such-" + path[start + 1 : end] + path[end + 1 :]
    return path


def project_scoped(operation: dict[str, Any]) -> bool:
    """Routes taking the `project_id` query parameter of `ProjectDep`."""
    return any(p["name"] == "project_id" and p["in"] == "query" for p in operation.get("parameters", []))


def bad_tokens(valid: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": "admin", "uid": 1, "admin": True, "projects": ["default"]}
    header, payload, signature = valid.split(".")
    escalated = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    escalated.update(admin=True, projects=["default", "other"], exp=now + 10_000)
    forged_payload = base64.urlsafe_b64encode(json.dumps(escalated).encode()).rstrip(b"=").decode()
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return {
        "missing": "",
        "garbage": "Bearer not-a-token",
        "expired": "Bearer "
        + jwt.encode({**claims, "iat": now - 7_200, "exp": now - 3_600}, JWT_SECRET, algorithm=ALGORITHM),
        "tampered": f"Bearer {header}.{forged_payload}.{signature}",
        "foreign_secret": "Bearer "
        + jwt.encode({**claims, "exp": now + 600}, "not-the-secret-" * 4, algorithm=ALGORITHM),
        "unsigned": f"Bearer {unsigned_header}.{forged_payload}.",
        "basic_scheme": "Basic " + base64.b64encode(b"admin:admin-test-password").decode(),
        "token_without_scheme": valid,
    }


async def test_every_non_public_route_refuses_bad_tokens(
    gateway: tuple[FastAPI, httpx.AsyncClient], admin_token: str
) -> None:
    app, http = gateway
    checked = 0
    for method, path, _route in operations(app):
        if (method, path) in PUBLIC:
            continue
        for name, header in bad_tokens(admin_token).items():
            headers = {"Authorization": header} if header else {}
            body = {} if method in WRITES else None
            response = await http.request(method, concrete(path), headers=headers, json=body)
            assert response.status_code == 401, (method, path, name, response.status_code, response.text)
            assert response.headers.get("www-authenticate") == "Bearer", (method, path, name)
            assert "detail" in response.json()
            checked += 1
    assert checked >= 8 * 10  # every route times every bad token, over a gateway of some size


async def test_public_routes_are_only_the_expected_ones(gateway: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, http = gateway
    public = set()
    for method, path, _route in operations(app):
        response = await http.request(method, concrete(path), json={} if method in WRITES else None)
        if response.status_code != 401:
            public.add((method, path))
    assert public <= PUBLIC, f"reachable without a token: {sorted(public - PUBLIC)}"


async def _member_of_new_project(http: httpx.AsyncClient, auth: dict[str, str]) -> tuple[str, dict[str, str]]:
    project, username, password = (
        f"acl-{uuid.uuid4().hex[:8]}",
        f"acl-{uuid.uuid4().hex[:8]}",
        "acl-password-1",
    )
    assert (
        await http.post("/api/v1/projects", json={"id": project, "name": project}, headers=auth)
    ).status_code == 201
    user = {"username": username, "password": password, "projects": [project]}
    assert (await http.post("/api/v1/users", json=user, headers=auth)).status_code == 201
    token = (await http.post("/api/v1/auth/login", json={"username": username, "password": password})).json()
    return project, {"Authorization": f"Bearer {token['access_token']}"}


async def test_other_projects_are_indistinguishable_from_missing_ones(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    app, http = gateway
    mine, headers = await _member_of_new_project(http, auth)
    theirs, _ = await _member_of_new_project(http, auth)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    scoped = [(method, path) for method, path, operation in operations(app) if project_scoped(operation)]
    assert len(scoped) >= 10, scoped
    not_found = 0
    for method, path in scoped:
        body = {} if method in WRITES else None
        answers = {}
        for project in (theirs, missing):
            response = await http.request(
                method, concrete(path), params={"project_id": project}, headers=headers, json=body
            )
            answers[project] = (response.status_code, str(response.json()["detail"]).replace(project, "<p>"))
        # A body refused before the project is looked at is a 422 for both: still nothing to tell apart.
        assert answers[theirs] == answers[missing], (method, path, answers)
        assert answers[theirs][0] in (404, 422), (method, path, answers)
        not_found += answers[theirs] == (404, "project '<p>' not found")
    assert not_found >= 10, not_found

    for model in INBOUND:
        example = json.loads(next(e for e in EXAMPLES if e.topic == model.topic).model_dump_json())
        url = "/api/v1/events/" + model.topic.replace(".", "-")
        for project in (theirs, missing):
            response = await http.post(url, json={**example, "project_id": project}, headers=headers)
            assert response.status_code == 404, (url, response.text)
        assert (
            await http.post(url, json={**example, "project_id": mine}, headers=headers)
        ).status_code == 202


async def test_resources_of_another_project_cannot_be_read_or_changed(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    _app, http = gateway
    owner_project, owner = await _member_of_new_project(http, auth)
    _other_project, intruder = await _member_of_new_project(http, auth)
    created = await http.post(
        "/api/v1/connectors",
        json={"name": "private", "type": "milvus", "config": {"uri": "http://127.0.0.1:1"}},
        headers=owner,
    )
    assert created.status_code == 201, created.text
    connector = created.json()["id"]
    url = f"/api/v1/connectors/{connector}"
    for request in (
        http.get(url, headers=intruder),
        http.patch(url, json={"name": "stolen"}, headers=intruder),
        http.delete(url, headers=intruder),
        http.post(f"{url}/test", headers=intruder),
        http.get(url, params={"project_id": owner_project}, headers=intruder),
        http.delete(url, params={"project_id": owner_project}, headers=intruder),
    ):
        response = await request
        assert response.status_code == 404, (response.request.method, response.request.url, response.text)
    assert connector not in (await http.get("/api/v1/connectors", headers=intruder)).text
    still = await http.get(url, headers=owner)
    assert still.status_code == 200 and still.json()["name"] == "private"


async def test_login_guessing_is_throttled(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    app, http = gateway
    limit = app.state.runtime.settings.login_max_failures
    _project, _headers = await _member_of_new_project(http, auth)
    victim = f"victim-{uuid.uuid4().hex[:8]}"
    assert (
        await http.post(
            "/api/v1/users",
            json={"username": victim, "password": "right-password-1", "projects": ["default"]},
            headers=auth,
        )
    ).status_code == 201

    async def login(username: str, password: str) -> httpx.Response:
        return await http.post("/api/v1/auth/login", json={"username": username, "password": password})

    codes = [(await login(victim, f"guess-{n}")).status_code for n in range(limit)]
    assert codes == [401] * limit
    throttled = await login(victim, "right-password-1")
    assert throttled.status_code == 429, "the right password must not get through while throttled"
    assert int(throttled.headers["retry-after"]) >= 1
    # One client trying many usernames is stopped too, a little later.
    codes = [
        (await login(f"spray-{n}-{uuid.uuid4().hex[:4]}", "password1")).status_code for n in range(4 * limit)
    ]
    assert 429 in codes and codes[-1] == 429, codes
