"""Attacks on the gateway's trust, each reproduced and shown refused.

- A token is trusted for who, never for what: with the signing key leaked, a token for a user
  that does not exist, or one claiming the administrator role, gets nothing.
- Disabling, deleting or changing the password of a user ends their tokens; a change of roles or
  membership reaches every gateway replica within the authorisation cache's time.
- Roles hold: a member cannot manage roles, give themselves more, or create users.
"""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
from fastapi import FastAPI

from services.gateway.app import create_app
from services.gateway.roles import Role
from services.runtime import Runtime
from tests.conftest import JWT_SECRET
from tests.reliability.conftest import gateway_client, random_address
from tests.reliability.test_access import new_project, new_user
from tests.support import eventually, signed_token

Headers = dict[str, str]
ME = "/api/v1/auth/me"


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


def token_of(headers: Headers) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_a_leaked_key_mints_nobody(gateway: tuple[FastAPI, httpx.AsyncClient], auth: Headers) -> None:
    """Signed with the real key, as someone holding it would: a user that does not exist is 401;
    the administrator flag and projects written into a real user's token are ignored."""
    _app, http = gateway
    project = await new_project(http, auth)
    _name, member = await new_user(http, auth, {project: Role.member})
    now = int(time.time())
    nobody = signed_token({"sub": "admin", "uid": 999_999, "ver": 0, "exp": now + 600}, JWT_SECRET)
    for url in (ME, "/api/v1/projects", "/api/v1/advanced/features/features?project_id=default"):
        refused = await http.get(url, headers=bearer(nobody))
        assert refused.status_code == 401 and refused.json()["detail"] == "token revoked", refused.text

    claims = jwt.decode(token_of(member), options={"verify_signature": False})
    escalated = signed_token(
        {**claims, "admin": True, "is_admin": True, "projects": ["default"], "roles": {"default": "owner"}},
        JWT_SECRET,
    )
    me = await http.get(ME, headers=bearer(escalated))
    assert me.status_code == 200 and me.json()["is_admin"] is False
    assert me.json()["roles"] == {project: "member"}
    assert (await http.get("/api/v1/projects", headers=bearer(escalated))).status_code == 403
    other = await http.get("/api/v1/advanced/features/features?project_id=default", headers=bearer(escalated))
    assert other.status_code == 404
    user = {"username": f"x-{uuid.uuid4().hex[:6]}", "password": "password-12", "projects": [project]}
    assert (await http.post("/api/v1/users", json=user, headers=bearer(escalated))).status_code == 403
    for missing in ("ver", "uid"):  # a token without the claims authorisation needs is not one
        partial = signed_token({k: v for k, v in claims.items() if k != missing}, JWT_SECRET)
        assert (await http.get(ME, headers=bearer(partial))).status_code == 401


async def test_disabled_and_deleted_users_lose_their_tokens(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: Headers
) -> None:
    _app, http = gateway
    project = await new_project(http, auth)
    name, user = await new_user(http, auth, {project: Role.member})
    assert (await http.get(ME, headers=user)).status_code == 200

    disabled = await http.patch(f"/api/v1/users/{name}", json={"disabled": True}, headers=auth)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    refused = await http.get(ME, headers=user)
    assert refused.status_code == 401 and refused.json()["detail"] == "user disabled"
    login = {"username": name, "password": "acl-password-1"}
    assert (await http.post("/api/v1/auth/login", json=login)).status_code == 401
    # enabled again: the old token stays revoked (disabling raised the token version); a new login works
    assert (
        await http.patch(f"/api/v1/users/{name}", json={"disabled": False}, headers=auth)
    ).status_code == 200
    assert (await http.get(ME, headers=user)).json()["detail"] == "token revoked"
    fresh = await http.post("/api/v1/auth/login", json=login)
    assert fresh.status_code == 200
    fresh_headers = bearer(fresh.json()["access_token"])
    assert (await http.get(ME, headers=fresh_headers)).status_code == 200

    assert (await http.delete(f"/api/v1/users/{name}", headers=auth)).status_code == 204
    gone = await http.get(ME, headers=fresh_headers)
    assert gone.status_code == 401 and gone.json()["detail"] == "token revoked"
    assert (await http.delete(f"/api/v1/users/{name}", headers=auth)).status_code == 404
    # administrators do not lock themselves out
    for change in ({"disabled": True}, {"is_admin": False}):
        assert (await http.patch("/api/v1/users/admin", json=change, headers=auth)).status_code == 409
    assert (await http.delete("/api/v1/users/admin", headers=auth)).status_code == 409


async def test_a_password_change_revokes_earlier_tokens(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: Headers
) -> None:
    _app, http = gateway
    project = await new_project(http, auth)
    name, first = await new_user(http, auth, {project: Role.member})
    login = await http.post("/api/v1/auth/login", json={"username": name, "password": "acl-password-1"})
    second = bearer(login.json()["access_token"])  # a second session of the same user
    wrong = await http.post(
        "/api/v1/auth/password",
        json={"current_password": "not-it-at-all", "new_password": "new-password-2"},
        headers=first,
    )
    assert wrong.status_code == 403
    changed = await http.post(
        "/api/v1/auth/password",
        json={"current_password": "acl-password-1", "new_password": "new-password-2"},
        headers=first,
    )
    assert changed.status_code == 200, changed.text
    for old in (first, second):
        refused = await http.get(ME, headers=old)
        assert refused.status_code == 401 and refused.json()["detail"] == "token revoked"
    renewed = bearer(changed.json()["access_token"])
    assert (await http.get(ME, headers=renewed)).json()["username"] == name
    old_login = await http.post("/api/v1/auth/login", json={"username": name, "password": "acl-password-1"})
    assert old_login.status_code == 401

    # an administrator setting a new password revokes too
    reset = await http.patch(f"/api/v1/users/{name}", json={"password": "reset-password-3"}, headers=auth)
    assert reset.status_code == 200
    assert (await http.get(ME, headers=renewed)).status_code == 401


async def test_role_changes_reach_every_replica_within_the_cache_time(
    runtime: Runtime, auth: Headers
) -> None:
    """Two gateway apps on one database, as two replicas: a change made through one applies there
    at once, and on the other once its cache entry expires."""
    first, second = create_app(runtime, owns_runtime=False), create_app(runtime, owns_runtime=False)
    second.state.authenticator.cache_seconds = 0.5
    async with (
        gateway_client(first, random_address()) as one,
        gateway_client(second, random_address()) as two,
    ):
        project = await new_project(one, auth)
        name, user = await new_user(one, auth, {project: Role.member})
        features = f"/api/v1/advanced/features/features?project_id={project}"
        assert (await one.get(features, headers=user)).status_code == 200
        assert (await two.get(features, headers=user)).status_code == 200  # now remembered by both
        removed = await one.delete(f"/api/v1/projects/{project}/members/{name}", headers=auth)
        assert removed.status_code == 204
        assert (await one.get(features, headers=user)).status_code == 404

        async def gone_on_second() -> bool:
            return (await two.get(features, headers=user)).status_code == 404

        started = time.monotonic()
        await eventually(gone_on_second, timeout=5)
        assert time.monotonic() - started < 0.5 + 1.0

        made_viewer = await one.put(
            f"/api/v1/projects/{project}/members/{name}", json={"role": "viewer"}, headers=auth
        )
        assert made_viewer.status_code == 200
        write = {"name": "n", "feature_type": "int64", "entity": "user"}
        refused = await one.post(
            f"/api/v1/advanced/features/register?project_id={project}", json=write, headers=user
        )
        assert refused.status_code == 403, refused.text
        assert (await one.get(features, headers=user)).status_code == 200


async def test_a_member_cannot_raise_their_own_rights(
    gateway: tuple[FastAPI, httpx.AsyncClient], auth: Headers
) -> None:
    _app, http = gateway
    project = await new_project(http, auth)
    name, member = await new_user(http, auth, {project: Role.member})
    maintainer_name, maintainer = await new_user(http, auth, {project: Role.maintainer})
    for headers, target in ((member, name), (maintainer, maintainer_name), (maintainer, name)):
        for role in ("owner", "maintainer"):
            response = await http.put(
                f"/api/v1/projects/{project}/members/{target}", json={"role": role}, headers=headers
            )
            assert response.status_code == 403, response.text
    assert (
        await http.patch(f"/api/v1/users/{name}", json={"is_admin": True}, headers=member)
    ).status_code == 403
    user = {"username": f"x-{uuid.uuid4().hex[:6]}", "password": "password-12", "roles": {project: "owner"}}
    assert (await http.post("/api/v1/users", json=user, headers=member)).status_code == 403
    assert (
        await http.post("/api/v1/projects", json={"id": "mine", "name": "m"}, headers=member)
    ).status_code == 403
    me = (await http.get(ME, headers=member)).json()
    assert me["roles"] == {project: "member"} and me["is_admin"] is False
