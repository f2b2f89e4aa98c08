"""Gateway: login, token checks, project isolation, the schema-observed vertical slice."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import jwt
from sqlalchemy import select

from services.gateway.admin import ensure_bootstrap_admin
from services.gateway.security import ALGORITHM
from services.gateway.tables import Membership, User
from services.runtime import Runtime
from shared.migrate import upgrade_async
from shared.settings import Settings
from tests.conftest import ADMIN_PASSWORD, JWT_SECRET
from tests.support import eventually, fresh_postgres_database


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
    expired = jwt.encode(
        {"sub": "admin", "uid": 1, "admin": True, "iat": now - 100, "exp": now - 10},
        JWT_SECRET,
        algorithm=ALGORITHM,
    )
    response = await client.get(url, headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and response.json()["detail"] == "token expired"
    forged = jwt.encode(
        {"sub": "admin", "uid": 1, "admin": True, "exp": now + 100}, "another-secret" * 4, algorithm=ALGORITHM
    )
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
