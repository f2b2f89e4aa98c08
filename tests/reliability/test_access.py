"""Access control over the whole gateway, enumerated from its routes rather than listed by hand.

- every route but the public ones answers 401 without a token, and with an expired, tampered,
  foreign-signed, unsigned or non-bearer one;
- a project the caller is not in is indistinguishable from one that does not exist (404, never 403),
  for every route scoped by `project_id`, and for resources addressed by id;
- login guessing is throttled per user and per client, and a throttled user cannot log in even with
  the right password until the window passes;
- every status these checks answer (401, 403, 404, ...) is in the route's OpenAPI operation.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from aietl.services.gateway.app import API_PREFIX, api_routers, service_apis
from aietl.services.gateway.events import INBOUND
from aietl.services.gateway.roles import Role
from aietl.services.gateway.security import ALGORITHM
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


def documented(operation: dict[str, Any], status_code: int) -> bool:
    """The OpenAPI operation lists the status, as schemathesis' status-code conformance reads it."""
    responses = operation.get("responses", {})
    return any(key in responses for key in (str(status_code), f"{status_code // 100}XX", "default"))


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
    for method, path, operation in operations(app):
        if (method, path) in PUBLIC:
            continue
        assert not operation or documented(operation, 401), (method, path)
        for name, header in bad_tokens(admin_token).items():
            headers = {"Authorization": header} if header else {}
            body: dict[str, Any] | None = {} if method in WRITES else None
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


async def new_project(http: httpx.AsyncClient, auth: dict[str, str]) -> str:
    project = f"acl-{uuid.uuid4().hex[:8]}"
    created = await http.post("/api/v1/projects", json={"id": project, "name": project}, headers=auth)
    assert created.status_code == 201, created.text
    return project


async def new_user(
    http: httpx.AsyncClient, auth: dict[str, str], roles: dict[str, Role]
) -> tuple[str, dict[str, str]]:
    """A user with these roles, logged in: (username, headers)."""
    username, password = f"acl-{uuid.uuid4().hex[:8]}", "acl-password-1"
    user = {"username": username, "password": password, "roles": roles}
    created = await http.post("/api/v1/users", json=user, headers=auth)
    assert created.status_code == 201, created.text
    token = (await http.post("/api/v1/auth/login", json={"username": username, "password": password})).json()
    return username, {"Authorization": f"Bearer {token['access_token']}"}


async def member_of_new_project(
    http: httpx.AsyncClient, auth: dict[str, str], role: Role = Role.member
) -> tuple[str, str, dict[str, str]]:
    """A new project and a new user in it with `role`, logged in: (project, username, headers)."""
    project = await new_project(http, auth)
    username, headers = await new_user(http, auth, {project: role})
    return project, username, headers


async def test_other_projects_are_indistinguishable_from_missing_ones(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    app, http = gateway
    mine, _, headers = await member_of_new_project(http, auth)
    theirs, _, _ = await member_of_new_project(http, auth)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    scoped = [(m, path, operation) for m, path, operation in operations(app) if project_scoped(operation)]
    assert len(scoped) >= 10, scoped
    not_found = 0
    for method, path, operation in scoped:
        body: dict[str, Any] | None = {} if method in WRITES else None
        answers = {}
        for project in (theirs, missing):
            response = await http.request(
                method, concrete(path), params={"project_id": project}, headers=headers, json=body
            )
            answers[project] = (response.status_code, str(response.json()["detail"]).replace(project, "<p>"))
        # A body refused before the project is looked at is a 422 for both: still nothing to tell apart.
        assert answers[theirs] == answers[missing], (method, path, answers)
        assert answers[theirs][0] in (404, 422), (method, path, answers)
        assert documented(operation, answers[theirs][0]), (method, path, answers)
        not_found += answers[theirs] == (404, "project '<p>' not found")
    assert not_found >= 10, not_found

    for model in INBOUND:
        example = json.loads(next(e for e in EXAMPLES if e.topic == model.topic).model_dump_json())
        url = "/api/v1/events/" + model.topic.replace(".", "-")
        for project in (theirs, missing):
            response = await http.post(url, json={**example, "project_id": project}, headers=headers)
            assert response.status_code == 404, (url, response.text)
        assert documented(app.openapi()["paths"][url]["post"], 404), url
        assert (
            await http.post(url, json={**example, "project_id": mine}, headers=headers)
        ).status_code == 202


async def test_resources_of_another_project_cannot_be_read_or_changed(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    _app, http = gateway
    owner_project, _, owner = await member_of_new_project(http, auth)
    _other_project, _, intruder = await member_of_new_project(http, auth)
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
    await member_of_new_project(http, auth)
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


READ_POSTS = {
    ("POST", "/api/v1/advanced/features/get-online"),
    ("POST", "/api/v1/advanced/features/historical"),
    ("POST", "/api/v1/advanced/vectors/search"),
}
"""Reads sent as POST (the question is the body): open to viewers, as docs/reliability.md lists them."""


def api_routes() -> list[tuple[str, APIRoute]]:
    """Every route under /api/v1 with its full path (FastAPI keeps included routers unflattened)."""
    return [
        (API_PREFIX + route.path, route)
        for router in api_routers(service_apis())
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def uses_project_dependency(route: APIRoute) -> bool:
    """Routes whose project in scope is the gateway's project dependency (`ProjectDep` and kin)."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if getattr(dependant.call, "__name__", "") == "project_dependency":
            return True
        pending.extend(dependant.dependencies)
    return False


MAINTAINER_WRITES = {("DELETE", "/api/v1/advanced/templates/connections/{name}")}
"""Project-dependency routes that need more than a member (see docs/templates.md, roles)."""


async def test_viewers_read_and_only_members_write(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    app, http = gateway
    paths = app.openapi()["paths"]
    project = await new_project(http, auth)
    _, viewer = await new_user(http, auth, {project: Role.viewer})
    _, member = await new_user(http, auth, {project: Role.member})
    needs_member = f"role member or above required in project {project!r} (yours: viewer)"
    reads, writes = set(), set()
    for path, route in api_routes():
        if not uses_project_dependency(route):
            continue
        for method in route.methods or ():
            url = concrete(path)
            body: dict[str, Any] | None = {} if method in WRITES else None
            as_viewer = await http.request(
                method, url, params={"project_id": project}, headers=viewer, json=body
            )
            operation = paths[path][method.lower()]
            assert documented(operation, as_viewer.status_code), (method, path, as_viewer.status_code)
            if method in {"GET", "HEAD"} or (method, path) in READ_POSTS:
                assert as_viewer.status_code != 403, (method, path, as_viewer.text)
                reads.add((method, path))
                continue
            assert as_viewer.status_code == 403, (method, path, as_viewer.text)
            if (method, path) in MAINTAINER_WRITES:
                assert as_viewer.json()["detail"] == needs_member.replace("member", "maintainer", 1)
                continue
            assert as_viewer.json()["detail"] == needs_member, (method, path)
            as_member = await http.request(
                method, url, params={"project_id": project}, headers=member, json=body
            )
            assert "role member" not in as_member.text, (method, path, as_member.text)
            assert documented(operation, as_member.status_code), (method, path, as_member.status_code)
            writes.add((method, path))
    assert len(reads) >= 15 and len(writes) >= 15, (reads, writes)
    assert reads >= READ_POSTS

    for model in INBOUND:  # the project named in the body: the same rule
        example = json.loads(next(e for e in EXAMPLES if e.topic == model.topic).model_dump_json())
        url, event = "/api/v1/events/" + model.topic.replace(".", "-"), {**example, "project_id": project}
        refused = await http.post(url, json=event, headers=viewer)
        assert refused.status_code == 403 and refused.json()["detail"] == needs_member, refused.text
        assert documented(paths[url]["post"], 403), url
        assert (await http.post(url, json=event, headers=member)).status_code == 202


async def test_owners_manage_members_and_members_cannot(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    _app, http = gateway
    project, elsewhere = await new_project(http, auth), await new_project(http, auth)
    owner_name, owner = await new_user(http, auth, {project: Role.owner})
    member_name, member = await new_user(http, auth, {project: Role.member})
    outsider_name, outsider = await new_user(http, auth, {elsewhere: Role.owner})
    members = f"/api/v1/projects/{project}/members"

    promote_self = await http.put(f"{members}/{member_name}", json={"role": "owner"}, headers=member)
    assert promote_self.status_code == 403, promote_self.text
    assert "role owner or above required" in promote_self.json()["detail"]
    assert (await http.delete(f"{members}/{owner_name}", headers=member)).status_code == 403
    # an owner elsewhere sees nothing of this project: 404, as for one that does not exist
    for request in (
        http.put(f"{members}/{outsider_name}", json={"role": "owner"}, headers=outsider),
        http.get(members, headers=outsider),
        http.delete(f"{members}/{member_name}", headers=outsider),
    ):
        response = await request
        assert response.status_code == 404 and response.json()["detail"] == f"project {project!r} not found"

    added = await http.put(f"{members}/{outsider_name}", json={"role": "viewer"}, headers=owner)
    assert added.status_code == 200 and added.json() == {"username": outsider_name, "role": "viewer"}
    promoted = await http.put(f"{members}/{member_name}", json={"role": "maintainer"}, headers=owner)
    assert promoted.status_code == 200, promoted.text
    listed = await http.get(members, headers=member)
    assert {m["username"]: m["role"] for m in listed.json()} == {
        owner_name: "owner",
        member_name: "maintainer",
        outsider_name: "viewer",
    }
    assert (
        await http.put(f"{members}/{member_name}", json={"role": "admin"}, headers=owner)
    ).status_code == 422
    assert (
        await http.put(f"{members}/nobody-{uuid.uuid4().hex[:6]}", json={"role": "viewer"}, headers=owner)
    ).status_code == 404
    assert (await http.delete(f"{members}/{outsider_name}", headers=owner)).status_code == 204
    assert (await http.delete(f"{members}/{outsider_name}", headers=owner)).status_code == 404
    # administrators act as owner in every project, but a missing project stays missing
    missing = f"/api/v1/projects/missing-{uuid.uuid4().hex[:6]}/members/{member_name}"
    assert (await http.put(missing, json={"role": "viewer"}, headers=auth)).status_code == 404
    assert (
        await http.put(f"{members}/{outsider_name}", json={"role": "member"}, headers=auth)
    ).status_code == 200


async def test_users_are_created_with_roles(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    _app, http = gateway
    first, second = await new_project(http, auth), await new_project(http, auth)
    username = f"acl-{uuid.uuid4().hex[:8]}"
    user = {"username": username, "password": "acl-password-1", "projects": [first, second]}
    created = await http.post("/api/v1/users", json={**user, "roles": {second: "maintainer"}}, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["roles"] == {first: "member", second: "maintainer"}
    assert created.json()["projects"] == sorted([first, second])
    me = await http.post("/api/v1/auth/login", json={"username": username, "password": "acl-password-1"})
    headers = {"Authorization": f"Bearer {me.json()['access_token']}"}
    assert (await http.get("/api/v1/auth/me", headers=headers)).json()["roles"] == created.json()["roles"]
    for invalid in ({**user, "roles": {first: "admin"}}, {**user, "projects": []}):
        invalid["username"] = f"acl-{uuid.uuid4().hex[:8]}"
        assert (await http.post("/api/v1/users", json=invalid, headers=auth)).status_code == 422
