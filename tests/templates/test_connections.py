"""Connections a project manages through the API (sealed, never returned), and what instantiate checks."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from aietl.services.runtime import Runtime
from aietl.services.templates.connections import Connections, UnknownConnection, project_file
from aietl.services.templates.service import service_of
from aietl.services.templates.tables import ProjectConnection
from aietl.shared.settings import Settings

BASE = "/api/v1/advanced/templates"
PASSWORD = "s3cret-Pa55-" + uuid.uuid4().hex[:8]


async def test_connections_are_added_tested_listed_and_deleted_without_a_restart(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    warehouse_url: str,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
) -> None:
    project, headers = project_user
    wrong_password = warehouse_url.replace("postgres@", f"postgres:{PASSWORD}@").replace("+asyncpg", "")
    unreachable = f"postgresql://postgres:{PASSWORD}@127.0.0.1:9/nowhere"
    by_member = await client.post(
        f"{BASE}/connections", json={"name": "x", "url": "sqlite:///x.db"}, headers=headers
    )
    assert by_member.status_code == 403
    answers = []
    for name, url in (("lite_one", "sqlite:///one.db"), ("down", unreachable), ("pg", wrong_password)):
        added = await client.post(
            f"{BASE}/connections", json={"name": name, "url": url}, headers=project_maintainer
        )
        assert added.status_code == 201, added.text
        answers.append(added.text)
    duplicate = await client.post(
        f"{BASE}/connections",
        json={"name": "lite_one", "url": "sqlite:///two.db"},
        headers=project_maintainer,
    )
    assert duplicate.status_code == 422 and "already exists" in duplicate.text
    listed = (await client.get(f"{BASE}/connections", headers=headers)).json()
    assert {"lite_one", "down", "pg", "clickhouse", "warehouse"} <= {c["name"] for c in listed}
    assert all(PASSWORD not in text for text in [*answers, str(listed)])
    [own] = [c for c in listed if c["name"] == "down"]
    assert own["origin"] == "project" and own["summary"] == "postgresql://postgres@127.0.0.1:9/nowhere"

    tested = (await client.post(f"{BASE}/connections/lite_one/test", headers=headers)).json()
    assert tested["ok"] and project_file(settings.data_dir, project, "one.db").exists()
    failed = (await client.post(f"{BASE}/connections/down/test", headers=headers)).json()
    assert failed == {"name": "down", "ok": False, "seconds": None, "error": "the server cannot be reached"}
    trusted = (await client.post(f"{BASE}/connections/pg/test", headers=headers)).json()
    assert trusted["ok"]  # the test server trusts local connections whatever the password

    async with runtime.database.sessions() as session:
        row = await session.get(ProjectConnection, (await _row_id(runtime, project, "down")))
    assert row is not None and PASSWORD not in row.sealed_url and PASSWORD not in row.summary

    # usable at once: a pipeline on the new SQLite connection
    target: Any = await service_of(runtime).connections.target(project, "lite_one")
    async with target.engine.begin() as sql:
        await sql.exec_driver_sql("CREATE TABLE src (id INTEGER, name TEXT)")
        await sql.exec_driver_sql("INSERT INTO src VALUES (1, 'a')")
    created = await client.post(
        f"{BASE}/instantiate",
        json={
            "template_id": "full_load_sqlite",
            "pipeline_name": "one",
            "connection": "lite_one",
            "config": {
                "source": {"name": "src"},
                "target": {"name": "dst"},
                "columns": [{"name": "id"}, {"name": "name"}],
                "keys": ["id"],
            },
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text  # project_id defaulted to the caller's only project
    run = await client.post(f"{BASE}/instances/{created.json()['instance_id']}/run", headers=headers)
    assert run.json()["status"] == "success" and run.json()["rows_written"] == 1

    other = await client.get(f"{BASE}/connections", params={"project_id": "default"}, headers=headers)
    assert other.status_code == 404
    assert (await client.delete(f"{BASE}/connections/down", headers=headers)).status_code == 403
    maintainer = project_maintainer
    assert (await client.delete(f"{BASE}/connections/down", headers=maintainer)).status_code == 204
    assert (await client.delete(f"{BASE}/connections/down", headers=maintainer)).status_code == 404
    assert (await client.delete(f"{BASE}/connections/warehouse", headers=maintainer)).status_code == 404
    gone = await client.post(f"{BASE}/connections/down/test", headers=headers)
    assert gone.status_code == 404


async def _row_id(runtime: Runtime, project: str, name: str) -> str:
    from sqlalchemy import select

    async with runtime.database.sessions() as session:
        return str(
            await session.scalar(
                select(ProjectConnection.id).where(
                    ProjectConnection.project_id == project, ProjectConnection.name == name
                )
            )
        )


async def test_unknown_connection_and_missing_source_are_reported_at_instantiate(
    client: httpx.AsyncClient, runtime: Runtime, project_user: tuple[str, dict[str, str]]
) -> None:
    _project, headers = project_user
    schema = f"c_{uuid.uuid4().hex[:8]}"
    warehouse: Any = await service_of(runtime).connections.target("", "warehouse")
    async with warehouse.engine.begin() as sql:
        await sql.exec_driver_sql(f"CREATE SCHEMA {schema}")
        await sql.exec_driver_sql(f"CREATE TABLE {schema}.orders (id BIGINT, amt NUMERIC)")
    config = {
        "source": {"schema": schema, "name": "orders"},
        "target": {"schema": schema, "name": "copy"},
        "columns": [{"name": "id"}, {"name": "amount", "source": "amount_usd"}],
        "keys": ["id"],
    }

    async def instantiate(connection: str, body_config: dict) -> httpx.Response:
        return await client.post(
            f"{BASE}/instantiate",
            json={
                "template_id": "full_load_postgres",
                "pipeline_name": "orders",
                "connection": connection,
                "config": body_config,
            },
            headers=headers,
        )

    unknown = await instantiate("nope", config)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "/connection" and "nope" in unknown.text
    missing_column = await instantiate("warehouse", config)
    assert missing_column.status_code == 422
    assert missing_column.json()["errors"] == [
        {"pointer": "/columns/1/source", "message": f"column 'amount_usd' is not in {schema}.orders"}
    ]
    missing_table = await instantiate("warehouse", {**config, "source": {"schema": schema, "name": "nope"}})
    assert missing_table.status_code == 422
    assert missing_table.json()["errors"][0]["pointer"] == "/source"


PORTABLE = {
    "pattern": "full_load",
    "category": "loading",
    "config_schema": {"type": "object", "required": ["source_table"]},
    "code": "SELECT * FROM {{ source_table }} WHERE {{ dialect | literal }} <> ''",
}


async def test_a_request_without_connection_gets_the_projects_only_one_else_the_sandbox(
    client: httpx.AsyncClient,
    runtime: Runtime,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
) -> None:
    """The specification's instantiate example names no connection: the pipeline goes to the
    project's only connection of its own, else the embedded sandbox, never the platform's database;
    a portable template is rendered and scope-checked in the dialect of the connection chosen."""
    project, headers = project_user
    template_id = f"portable_{uuid.uuid4().hex[:8]}"
    created = await client.post(
        f"{BASE}/create", json={**PORTABLE, "template_id": template_id}, headers=project_maintainer
    )
    assert created.status_code == 201, created.text

    async def instantiate(name: str, config: dict[str, Any], **extra: str) -> httpx.Response:
        body = {"template_id": template_id, "pipeline_name": name, "config": config, **extra}
        return await client.post(f"{BASE}/instantiate", json=body, headers=headers)

    sandboxed = await instantiate("on_sandbox", {"source_table": "src"})
    assert sandboxed.status_code == 201, sandboxed.text
    assert (sandboxed.json()["connection"], sandboxed.json()["dialect"]) == ("clickhouse", "clickhouse")
    assert "'clickhouse' <> ''" in sandboxed.json()["code"]

    added = await client.post(
        f"{BASE}/connections", json={"name": "mine", "url": "sqlite:///mine.db"}, headers=project_maintainer
    )
    assert added.status_code == 201, added.text
    target: Any = await service_of(runtime).connections.target(project, "mine")
    async with target.engine.begin() as sql:
        await sql.exec_driver_sql("CREATE TABLE src (id INTEGER)")
    own = await instantiate("on_mine", {"source_table": "src"})
    assert own.status_code == 201, own.text
    assert (own.json()["connection"], own.json()["dialect"]) == ("mine", "sqlite")
    run = await client.post(f"{BASE}/instances/{own.json()['instance_id']}/run", headers=headers)
    assert run.status_code == 200 and run.json()["status"] == "success", run.text

    # the scope check reads the portable template's SQL in the connection's dialect
    outside = await instantiate("outside", {"source_table": "src, users"}, connection="lite")
    assert outside.status_code == 422 and "users" in outside.text, outside.text


async def test_without_the_sandbox_a_request_must_name_its_connection(migrated: Settings) -> None:
    runtime = Runtime(migrated.model_copy(update={"templates_embedded_clickhouse": False}))
    try:
        with pytest.raises(UnknownConnection, match="name the connection to run on; known: warehouse, lite"):
            await Connections(runtime).default("p-without-connections")
    finally:
        await runtime.close()


async def test_project_connections_go_only_where_the_operator_allows(
    client: httpx.AsyncClient, project_maintainer: dict[str, str]
) -> None:
    """A maintainer picks the host and the platform connects from inside the network: the operator's
    outbound allow-list (`AIETL_OUTBOUND_ALLOWED_HOSTS`; the tests allow 127.0.0.1) applies."""
    for url in (
        f"postgresql://etl:{PASSWORD}@10.255.255.1:5432/dw",
        f"clickhouse://default:{PASSWORD}@169.254.169.254:8123/default",
        f"postgresql://etl:{PASSWORD}@127.0.0.1:5432/dw?host=10.0.0.1",
    ):
        refused = await client.post(
            f"{BASE}/connections", json={"name": "elsewhere", "url": url}, headers=project_maintainer
        )
        assert refused.status_code == 422, refused.text
        assert "not allowed" in refused.text or "not accepted" in refused.text, refused.text
        assert PASSWORD not in refused.text
