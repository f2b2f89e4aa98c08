"""Attacks on the gateway's trust, each reproduced and shown refused.

- A token is trusted for who, never for what: with the signing key leaked, a token for a user
  that does not exist, or one claiming the administrator role, gets nothing.
- Disabling, deleting or changing the password of a user ends their tokens; a change of roles or
  membership reaches every gateway replica within the authorisation cache's time.
- Roles hold: a member cannot manage roles, give themselves more, or create users.
- Login throttling stops guessing on every replica without locking the real user out, and an
  X-Forwarded-For header is believed only from a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import time
import uuid

import httpx
import jwt
from fastapi import FastAPI

from aietl.services.gateway.app import create_app
from aietl.services.gateway.roles import Role
from aietl.services.runtime import Runtime
from tests.conftest import JWT_SECRET
from tests.reliability.conftest import gateway_client, random_address
from tests.reliability.test_access import member_of_new_project, new_project, new_user
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
    project, _name, member = await member_of_new_project(http, auth)
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
    _project, name, user = await member_of_new_project(http, auth)
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
    _project, name, first = await member_of_new_project(http, auth)
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
    project, name, member = await member_of_new_project(http, auth)
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


async def _login(http: httpx.AsyncClient, username: str, password: str, **headers: str) -> int:
    response = await http.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )
    return response.status_code


async def test_guessing_cannot_lock_out_the_real_user(runtime: Runtime, auth: Headers) -> None:
    """Two replicas on one database. A client guessing a password is stopped on both; the real user,
    from a client of their own, still logs in; nobody's success resets the guessing client."""
    first, second = create_app(runtime, owns_runtime=False), create_app(runtime, owns_runtime=False)
    limit = runtime.settings.login_max_failures
    async with gateway_client(first, random_address()) as admin_http:
        project = await new_project(admin_http, auth)
        victim, _ = await new_user(admin_http, auth, {project: Role.member})
        own_account, _ = await new_user(admin_http, auth, {project: Role.member})
    password = "acl-password-1"
    attacker = random_address()
    async with (
        gateway_client(first, attacker) as attacker_on_first,
        gateway_client(second, attacker) as attacker_on_second,
        gateway_client(second, random_address()) as real_user,
    ):
        codes = [await _login(attacker_on_first, victim, f"guess-{n}") for n in range(limit)]
        assert codes == [401] * limit
        for replica in (attacker_on_first, attacker_on_second):  # the count is the database's
            assert await _login(replica, victim, password) == 429
        assert await _login(real_user, victim, password) == 200
        # the attacker's own successful login, and the victim's, reset nothing for the victim
        assert await _login(attacker_on_second, own_account, password) == 200
        assert await _login(attacker_on_first, victim, password) == 429

    # a distributed attack: many clients, one guess each; then only clients without failures pass
    bots = [random_address() for _ in range(4 * limit)]
    for address in bots:
        async with gateway_client(first, address) as http:
            assert await _login(http, victim, "distributed-guess") == 401
    async with gateway_client(second, bots[0]) as bot, gateway_client(second, random_address()) as clean:
        assert await _login(bot, victim, password) == 429
        assert await _login(clean, victim, password) == 200


async def test_forwarded_for_is_believed_only_from_trusted_proxies(runtime: Runtime, auth: Headers) -> None:
    app = create_app(runtime, owns_runtime=False)
    limit = runtime.settings.login_max_failures
    async with gateway_client(app, random_address()) as admin_http:
        victim, _ = await new_user(admin_http, auth, {await new_project(admin_http, auth): Role.member})
    # untrusted: a new X-Forwarded-For with every guess changes nothing
    async with gateway_client(app, random_address()) as direct:
        codes = [
            await _login(direct, victim, f"guess-{n}", **{"X-Forwarded-For": random_address()})
            for n in range(limit + 2)
        ]
        assert codes == [401] * limit + [429, 429]

    proxy = "192.0.2.10"
    app.state.login_throttle.trusted_proxies = [ipaddress.ip_network(f"{proxy}/32")]
    guesser, neighbour = random_address(), random_address()
    async with gateway_client(app, proxy) as through_proxy:
        for n in range(limit):  # the guesser writes its own X-Forwarded-For; the proxy appends the truth
            forwarded = f"{random_address()}, {guesser}"
            assert await _login(through_proxy, victim, f"guess-{n}", **{"X-Forwarded-For": forwarded}) == 401
        assert await _login(through_proxy, victim, "acl-password-1", **{"X-Forwarded-For": guesser}) == 429
        assert await _login(through_proxy, victim, "acl-password-1", **{"X-Forwarded-For": neighbour}) == 200
