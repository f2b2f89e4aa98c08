"""Gateway: login, token checks and signing keys, project isolation, the schema-observed vertical slice."""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import select

from aietl.services.gateway.admin import ensure_bootstrap_admin
from aietl.services.gateway.security import (
    KEY_RING_FILE,
    KeyRing,
    TokenClaims,
    TokenVerifier,
    decode_token,
    issue_token,
)
from aietl.services.gateway.tables import Membership, User
from aietl.services.gateway.throttle import client_address
from aietl.services.runtime import Runtime
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from tests.conftest import ADMIN_PASSWORD, JWT_SECRET
from tests.foundation.test_demo import aietl
from tests.support import eventually, fresh_postgres_database, signed_token


async def test_health_ready_metrics_are_public(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["components"]["database"] == "ok"
    assert ready.json()["components"]["kafka"] == "ok"
    assert "aietl_http_request_seconds" in (await client.get("/metrics")).text


async def test_login_and_bad_credentials(client: httpx.AsyncClient) -> None:
    ok = await client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert ok.status_code == 200 and ok.json()["token_type"] == "bearer"
    wrong = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "nope-nope"})
    assert wrong.status_code == 401
    assert "nope-nope" not in wrong.text
    invalid = await client.post("/api/v1/auth/login", json={"username": "admin", "password": 5})
    assert invalid.status_code == 422 and "password" in invalid.text


async def test_protected_routes_need_a_valid_token(client: httpx.AsyncClient) -> None:
    url = "/api/v1/advanced/schema-drift/history?connector_id=c&table_name=t"
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers={"Authorization": "Bearer garbage"})).status_code == 401
    now = int(time.time())
    expired = signed_token(
        {"sub": "admin", "uid": 1, "ver": 0, "iat": now - 100, "exp": now - 10}, JWT_SECRET
    )
    response = await client.get(url, headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and response.json()["detail"] == "token expired"
    forged = signed_token({"sub": "admin", "uid": 1, "ver": 0, "exp": now + 100}, "another-secret" * 4)
    assert (await client.get(url, headers={"Authorization": f"Bearer {forged}"})).status_code == 401


async def test_other_projects_are_not_found(client: httpx.AsyncClient, project_user, auth) -> None:
    project, headers = project_user
    mine = await client.get(
        f"/api/v1/advanced/schema-drift/history?project_id={project}&connector_id=c&table_name=t",
        headers=headers,
    )
    assert mine.status_code == 200
    theirs = await client.get(
        "/api/v1/advanced/schema-drift/history?project_id=default&connector_id=c&table_name=t",
        headers=headers,
    )
    assert theirs.status_code == 404
    publish = await client.post(
        "/api/v1/events/schema-observed",
        json={
            "project_id": "default",
            "connector_id": "c",
            "table_name": "t",
            "columns": [{"name": "a", "type": "int"}],
        },
        headers=headers,
    )
    assert publish.status_code == 404
    assert (
        await client.post("/api/v1/projects", json={"id": "x", "name": "x"}, headers=headers)
    ).status_code == 403


async def test_login_is_rate_limited(client: httpx.AsyncClient, project_user) -> None:
    username = f"nobody-{uuid.uuid4().hex[:6]}"
    codes = [
        (
            await client.post("/api/v1/auth/login", json={"username": username, "password": "guess-guess"})
        ).status_code
        for _ in range(7)
    ]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429, 429]


async def test_vertical_slice_schema_observed_to_history(client: httpx.AsyncClient, project_user) -> None:
    project, headers = project_user
    table = f"orders_{uuid.uuid4().hex[:6]}"
    body = {
        "project_id": project,
        "connector_id": "pg_main",
        "table_name": table,
        "columns": [{"name": "id", "type": "int"}, {"name": "amount", "type": "numeric(10,2)"}],
    }
    first = await client.post("/api/v1/events/schema-observed", json=body, headers=headers)
    assert first.status_code == 202, first.text
    url = (
        f"/api/v1/advanced/schema-drift/history?project_id={project}&connector_id=pg_main&table_name={table}"
    )

    async def versions() -> list[dict]:
        return (await client.get(url, headers=headers)).json()["versions"]

    assert [v["version"] for v in await eventually(versions)] == [1]
    body["columns"].append({"name": "note", "type": "text"})
    await client.post("/api/v1/events/schema-observed", json=body, headers=headers)
    history = await eventually(lambda: _if(versions(), lambda v: len(v) == 2))
    assert [c["name"] for c in history[1]["columns"]] == ["id", "amount", "note"]
    assert history[0]["observed_event_id"] == first.json()["event_id"]


async def test_bad_event_bodies_get_422_naming_the_field(client: httpx.AsyncClient, auth) -> None:
    response = await client.post(
        "/api/v1/events/schema-observed",
        json={
            "project_id": "default",
            "connector_id": "c",
            "table_name": "t",
            "columns": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}],
        },
        headers=auth,
    )
    assert response.status_code == 422 and "duplicate column name" in response.text
    too_big = await client.post(
        "/api/v1/events/schema-observed",
        content=b"x" * (11 * 1024 * 1024),
        headers={**auth, "content-type": "application/json"},
    )
    assert too_big.status_code == 413


async def _if(awaitable, condition):
    value = await awaitable
    return value if condition(value) else None


async def test_replicas_starting_together_bootstrap_one_administrator(
    postgres_admin_url: str, settings: Settings
) -> None:
    """Several gateway replicas starting at once on a fresh database: each start succeeds (none
    trips over the rows another just created), and there is one administrator in one project."""
    with fresh_postgres_database(postgres_admin_url, "aietl_boot") as url:
        replicas = [Runtime(settings.model_copy(update={"database_url": url})) for _ in range(6)]
        try:
            await upgrade_async(url)
            await asyncio.gather(*(ensure_bootstrap_admin(replica) for replica in replicas))
            async with replicas[0].database.sessions() as session:
                admins = (await session.execute(select(User.username).where(User.is_admin))).scalars().all()
                memberships = (await session.execute(select(Membership.project_id))).scalars().all()
            assert admins == [settings.admin_username] and memberships == [settings.default_project]
        finally:
            for replica in replicas:
                await replica.close()


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    keys = KeyRing([JWT_SECRET])
    verifier = TokenVerifier(keys, size=2)
    token = issue_token(1, "u", 0, keys, ttl_seconds=1)
    assert verifier.verify(token) == TokenClaims(
        1, 0, jwt.decode(token, JWT_SECRET, algorithms=["HS256"])["exp"]
    )
    time.sleep(max(0.0, verifier.verify(token).expires - time.time()) + 0.05)
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.verify(token)
    others = [issue_token(i, f"u{i}", 0, keys, 60) for i in range(3)]
    assert [verifier.verify(other).user_id for other in others] == [0, 1, 2]
    assert len(verifier._verified) == 2  # bounded: the oldest entry made room


def test_key_rings_from_the_environment_rotate_in_three_steps() -> None:
    """Replicas restarted one by one: first every one verifies the new key (second in the ring),
    then every one signs with it (first), then the old key goes once its tokens have expired."""
    old, new = "old-key-" + "o" * 40, "new-key-" + "n" * 40
    before, adding, switched, after = (KeyRing(keys) for keys in ([old], [old, new], [new, old], [new]))
    issued_before = issue_token(1, "u", 0, before, 600)
    assert _kid(issued_before) == KeyRing.key_id(old)
    assert _kid(issue_token(1, "u", 0, adding, 600)) == KeyRing.key_id(old)
    issued_after = issue_token(1, "u", 0, switched, 600)
    assert _kid(issued_after) == KeyRing.key_id(new)
    for ring in (adding, switched):  # every replica, whichever step it is at, accepts both
        assert decode_token(issued_before, ring).user_id == decode_token(issued_after, ring).user_id == 1
    assert decode_token(issued_after, after).user_id == 1
    with pytest.raises(jwt.InvalidTokenError, match="unknown signing key"):
        decode_token(issued_before, after)
    ring = KeyRing.from_settings(Settings(environment="production", jwt_secrets=[new, old]))
    assert _kid(issue_token(1, "u", 0, ring, 60)) == KeyRing.key_id(new)
    for refused in (
        {"environment": "production"},
        {"jwt_secret": "short"},
        {"jwt_secret": new, "jwt_secrets": [new]},
    ):
        with pytest.raises(RuntimeError):
            KeyRing.from_settings(Settings(**refused))


def test_the_embedded_key_ring_rotates_without_a_restart(tmp_path: Path) -> None:
    keys = KeyRing.from_settings(Settings(environment="embedded", data_dir=tmp_path))
    assert (tmp_path / KEY_RING_FILE).stat().st_mode & 0o777 == 0o600
    verifier = TokenVerifier(keys, seconds=0)  # no memory: each check asks the ring
    issued_before = issue_token(7, "u", 0, keys, 600)

    rotated = aietl("jwt-keys", "rotate", "--data-dir", str(tmp_path), timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    issued_after = issue_token(7, "u", 0, keys, 600)  # the running ring signs with the new key at once
    assert _kid(issued_after) != _kid(issued_before) and _kid(issued_after) in rotated.stdout
    assert verifier.verify(issued_before).user_id == verifier.verify(issued_after).user_id == 7
    listed = aietl("jwt-keys", "list", "--data-dir", str(tmp_path), timeout=60).stdout.split("\n")
    assert listed[:2] == [f"{_kid(issued_after)}  (signs)", _kid(issued_before)]

    assert aietl("jwt-keys", "retire", "--data-dir", str(tmp_path), timeout=60).returncode == 0
    with pytest.raises(jwt.InvalidTokenError):
        verifier.verify(issued_before)
    assert verifier.verify(issued_after).user_id == 7


def test_the_client_is_the_first_untrusted_hop_from_the_right() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert client_address("203.0.113.9", ["1.2.3.4"], proxies) == "203.0.113.9"  # untrusted peer: ignored
    assert client_address("10.0.0.2", ["1.2.3.4, 198.51.100.7, 10.0.0.5"], proxies) == "198.51.100.7"
    assert client_address("::1", ["2001:db8::1"], proxies) == "2001:db8::1"
    assert client_address("10.0.0.2", ["1.2.3.4", "198.51.100.7"], proxies) == "198.51.100.7"  # two headers
    assert (
        client_address("10.0.0.2", ["garbage, 10.0.0.3"], proxies) == "10.0.0.3"
    )  # stops at what it can vouch for
    assert client_address("10.0.0.2", [], proxies) == "10.0.0.2"
    assert client_address(None, ["1.2.3.4"], proxies) == "unknown"


async def test_unknown_or_repeated_query_parameters_are_refused_by_name(
    client: httpx.AsyncClient, auth
) -> None:
    """A misspelt `project_id` must not quietly act in the caller's default project."""
    url = "/api/v1/advanced/features/features"
    assert (await client.get(url, params={"project_id": "default"}, headers=auth)).status_code == 200
    refused = await client.get(url, params={"projectid": "other", "zz": "1"}, headers=auth)
    assert refused.status_code == 422 and refused.json()["detail"] == "unknown query parameter: projectid, zz"
    twice = await client.get(f"{url}?project_id=default&project_id=other", headers=auth)
    assert (
        twice.status_code == 422
        and twice.json()["detail"] == "query parameter given more than once: project_id"
    )
    blackouts = (("blackout", "Mon 08:00-Mon 09:00"), ("blackout", "Tue 08:00-Tue 09:00"))
    repeated = await client.get(
        "/api/v1/advanced/predict/maintenance-window/p", params=blackouts, headers=auth
    )
    assert repeated.status_code != 422, repeated.text  # a list may repeat
    operation = client._transport.app.openapi()["paths"][url]["get"]  # type: ignore[attr-defined]
    assert {"401", "403", "404", "422"} <= set(operation["responses"])
