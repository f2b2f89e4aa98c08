"""REST, runs with metrics events, control-table generation and drift self-healing, end to end."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from aietl.services.runtime import Runtime
from aietl.services.templates.service import service_of
from aietl.shared.bus import publish_event
from aietl.shared.events import Drift, DriftDetected, SuggestedMapping
from aietl.shared.settings import Settings
from tests.support import eventually, read_topic

BASE = "/api/v1/advanced/templates"


async def sql(runtime: Runtime, statement: str) -> list[tuple]:
    """On the `warehouse` connection (the tests' PostgreSQL run target, not the platform's database)."""
    target: Any = await service_of(runtime).connections.target("", "warehouse")
    async with target.engine.begin() as connection:
        result = await connection.exec_driver_sql(statement)
        return [tuple(row) for row in result.all()] if result.returns_rows else []


async def source_table(runtime: Runtime) -> str:
    schema = f"s_{uuid.uuid4().hex[:10]}"
    await sql(runtime, f"CREATE SCHEMA {schema}")
    await sql(runtime, f"CREATE TABLE {schema}.orders (id BIGINT, amt NUMERIC(10, 2), seq BIGINT)")
    await sql(runtime, f"INSERT INTO {schema}.orders VALUES (1, 10.5, 1), (2, 20, 2), (3, NULL, 3)")
    return schema


async def test_template_versions_are_immutable_and_listed_with_usage(
    client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]], project_maintainer: dict[str, str]
) -> None:
    _project, member = project_user
    headers = project_maintainer
    body = {
        "template_id": "copy_table",
        "pattern": "full_load",
        "category": "loading",
        "dialect": "postgres",
        "config_schema": {
            "type": "object",
            "required": ["table"],
            "properties": {"table": {"type": "string"}},
        },
        "code": "SELECT * FROM {{ config.table | ident }};",
    }
    by_member = await client.post(f"{BASE}/create", json=body, headers=member)
    assert by_member.status_code == 403 and "maintainer" in by_member.text
    first = await client.post(f"{BASE}/create", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == "1.0.0"
    second = await client.post(f"{BASE}/create", json={**body, "code": "SELECT 1;"}, headers=headers)
    assert second.json()["version"] == "1.1.0"
    older = await client.post(f"{BASE}/create", json={**body, "version": "1.0.5"}, headers=headers)
    assert older.status_code == 409
    builtin_id = await client.post(
        f"{BASE}/create", json={**body, "template_id": "scd2_postgres"}, headers=headers
    )
    assert builtin_id.status_code == 409
    bad_schema = await client.post(
        f"{BASE}/create", json={**body, "config_schema": {"type": 5}}, headers=headers
    )
    assert bad_schema.status_code == 422 and "config_schema" in bad_schema.json()["detail"]
    bad_code = await client.post(f"{BASE}/create", json={**body, "code": "{% if %}"}, headers=headers)
    assert bad_code.status_code == 422

    listed = await client.get(f"{BASE}/list", params={"pattern": "full_load"}, headers=headers)
    ids = {(t["template_id"], t["version"]) for t in listed.json()}
    assert {("copy_table", "1.0.0"), ("copy_table", "1.1.0"), ("full_load_postgres", "1.0.0")} <= ids
    assert all(t["pattern"] == "full_load" for t in listed.json())
    scd2 = await client.get(f"{BASE}/list", params={"pattern": "scd2"}, headers=headers)
    assert {t["dialect"] for t in scd2.json()} == {"postgres", "clickhouse", "sqlite"}
    assert (await client.get(f"{BASE}/list", params={"pattern": "nope"}, headers=headers)).status_code == 422


async def test_instantiate_run_and_metrics(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    project_user: tuple[str, dict[str, str]],
    auth: dict[str, str],
) -> None:
    project, headers = project_user
    schema = await source_table(runtime)
    invalid = await client.post(
        f"{BASE}/instantiate",
        json={
            "template_id": "incremental_postgres",
            "project_id": project,
            "pipeline_name": "orders",
            "config": {"source": {"name": 'x"; DROP TABLE y; --'}, "columns": [{}], "keys": ["id"]},
            "connection": "warehouse",
        },
        headers=headers,
    )
    assert invalid.status_code == 422, invalid.text
    pointers = {error["pointer"] for error in invalid.json()["errors"]}
    assert {"/target", "/columns/0/name", "/watermark_column"} <= pointers

    config = {
        "source": {"schema": schema, "name": "orders"},
        "target": {"schema": schema, "name": "orders_copy"},
        "columns": [{"name": "id"}, {"name": "amount", "source": "amt"}, {"name": "seq"}],
        "keys": ["id"],
        "watermark_column": "seq",
        "watermark_type": "number",
    }
    wrong_target = await client.post(
        f"{BASE}/instantiate",
        json={
            "template_id": "incremental_postgres",
            "project_id": project,
            "pipeline_name": "orders",
            "config": config,
            "connection": "clickhouse",
        },
        headers=headers,
    )
    assert wrong_target.status_code == 422
    assert wrong_target.json()["errors"][0]["pointer"] == "/connection"

    created = await client.post(
        f"{BASE}/instantiate",
        json={
            "template_id": "incremental_postgres",
            "project_id": project,
            "pipeline_name": "orders",
            "config": config,
            "connection": "warehouse",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    instance = created.json()
    assert instance["version"] == 1 and instance["created"] and '"amt" AS "amount"' in instance["code"]

    run = await client.post(f"{BASE}/instances/{instance['instance_id']}/run", headers=headers)
    assert run.status_code == 200, run.text
    assert run.json()["status"] == "success"
    assert run.json()["rows_written"] == 3 and run.json()["high_watermark"] == "3"
    rerun = await client.post(f"{BASE}/instances/{instance['instance_id']}/run", headers=headers)
    assert rerun.json()["rows_written"] == 0
    assert await sql(runtime, f"SELECT id, amount FROM {schema}.orders_copy ORDER BY id") == [
        (1, 10.5),
        (2, 20),
        (3, None),
    ]

    runs = await client.get(f"{BASE}/instances/{instance['instance_id']}/runs", headers=headers)
    assert [r["rows_written"] for r in runs.json()] == [0, 3]
    run_id = run.json()["run_id"]
    [raw] = await read_topic(
        settings.resolved_kafka_servers, "metrics.ingested", lambda v: run_id.encode() in v
    )
    published = json.loads(raw)
    assert published["pipeline_id"] == "orders" and published["rows_written"] == 3
    assert published["status"] == "success" and published["memory_mb"] > 0

    usage = await client.get(f"{BASE}/list", params={"pattern": "incremental"}, headers=headers)
    [used] = [t for t in usage.json() if t["template_id"] == "incremental_postgres"]
    assert (used["instances"], used["runs"]) == (1, 2)

    await sql(runtime, f"DROP TABLE {schema}.orders")
    failed = await client.post(f"{BASE}/instances/{instance['instance_id']}/run", headers=headers)
    assert failed.json()["status"] == "failed" and "orders" in failed.json()["error_message"]

    # another project's caller cannot see or run it
    other = await client.get(f"{BASE}/instances/{instance['instance_id']}/runs", headers=auth)
    assert other.status_code == 404
    assert (
        await client.post(f"{BASE}/instances/{instance['instance_id']}/run", headers=auth)
    ).status_code == 404


async def test_control_table_generation_and_drift_self_healing(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, project_user: tuple[str, dict[str, str]]
) -> None:
    project, headers = project_user
    schema = await source_table(runtime)
    valid = {
        "source_system": "crm",
        "source_object": f"{schema}.orders",
        "target_system": "warehouse",
        "target_object": f"{schema}.orders_dw",
        "template_id": "incremental_postgres",
        "load_type": "incremental",
        "watermark_column": "seq",
        "keys": ["id"],
        "order": 1,
        "schedule": "0 0 1 1 *",  # far from now: the session's scheduler must not run it on its own
        "config": {
            "columns": [{"name": "id"}, {"name": "amount", "source": "amt"}, {"name": "seq"}],
            "watermark_type": "number",
        },
    }
    entry = await client.post(f"{BASE}/control-table", json=valid, headers=headers)
    assert entry.status_code == 201, entry.text
    duplicate = await client.post(f"{BASE}/control-table", json=valid, headers=headers)
    assert duplicate.status_code == 409
    broken = await client.post(
        f"{BASE}/control-table",
        json={**valid, "target_object": f"{schema}.broken", "config": {}, "order": 2},
        headers=headers,
    )
    disabled = await client.post(
        f"{BASE}/control-table",
        json={**valid, "target_object": f"{schema}.off", "enabled": False},
        headers=headers,
    )
    assert broken.status_code == disabled.status_code == 201
    entry_id = entry.json()["id"]
    updated = await client.put(
        f"{BASE}/control-table/{entry_id}", json={**valid, "schedule": "@yearly"}, headers=headers
    )
    assert updated.json()["schedule"] == "@yearly"
    assert (await client.get(f"{BASE}/control-table/{entry_id}", headers=headers)).json()["order"] == 1
    assert len((await client.get(f"{BASE}/control-table", headers=headers)).json()) == 3
    off_id = disabled.json()["id"]
    assert (await client.delete(f"{BASE}/control-table/{off_id}", headers=headers)).status_code == 204
    assert (await client.get(f"{BASE}/control-table/{off_id}", headers=headers)).status_code == 404

    dry = (await client.post(f"{BASE}/generate", json={"dry_run": True}, headers=headers)).json()
    assert (dry["valid"], dry["invalid"]) == (1, 1)
    [good, bad] = dry["pipelines"]
    assert good["code"] and not good["errors"] and good["instance_id"] is None
    assert {"/columns"} <= {error["pointer"] for error in bad["errors"]}
    assert (await client.get(f"{BASE}/instances", headers=headers)).json() == []

    real = (await client.post(f"{BASE}/generate", json={"dry_run": False}, headers=headers)).json()
    generated = real["pipelines"][0]
    assert generated["created"] and generated["instance_version"] == 1
    again = (await client.post(f"{BASE}/generate", json={"dry_run": False}, headers=headers)).json()
    assert not again["pipelines"][0]["created"] and again["pipelines"][0]["instance_version"] == 1
    instance_id = generated["instance_id"]
    await read_topic(
        settings.resolved_kafka_servers,
        "pipelines.generated",
        lambda v: instance_id.encode() in v and b"control_table" in v,
    )
    assert (await client.post(f"{BASE}/instances/{instance_id}/run", headers=headers)).json()[
        "rows_written"
    ] == 3

    # the source renames `amt` and gains `email`; drift accepted them (auto_adapt)
    await sql(runtime, f"ALTER TABLE {schema}.orders RENAME COLUMN amt TO amount_usd")
    await sql(runtime, f"ALTER TABLE {schema}.orders ADD COLUMN email TEXT")
    await sql(runtime, f"INSERT INTO {schema}.orders VALUES (4, 40, 4, 'd@example.com')")
    drift = DriftDetected(
        project_id=project,
        connector_id="crm",
        table_name="orders",
        observed_event_id=uuid.uuid4(),
        baseline_version=1,
        new_version=2,
        before_hash="a",
        after_hash="b",
        strategy="auto_adapt",
        status="adapted",
        drifts=[
            Drift(
                drift_type="renamed_column",
                column_name="amount_usd",
                previous_name="amt",
                severity="medium",
                confidence_score=0.9,
            ),
            Drift(
                drift_type="new_column",
                column_name="email",
                severity="low",
                confidence_score=1.0,
                suggested_mapping=SuggestedMapping(
                    auto_include=True, target_column="email", target_type="TEXT"
                ),
            ),
        ],
    )
    await publish_event(runtime.broker, drift)
    await publish_event(runtime.broker, drift)  # redelivery: no second version

    async def adapted() -> list[dict]:
        versions = await client.get(f"{BASE}/instances/{instance_id}/versions", headers=headers)
        return [v for v in versions.json() if v["version"] == 2]

    [version2] = await eventually(adapted)
    assert version2["reason"] == "drift_adaptation" and version2["drift_event_id"] == str(drift.event_id)
    assert {"name": "amount", "source": "amount_usd"} in version2["config"]["columns"]
    messages = await read_topic(
        settings.resolved_kafka_servers,
        "pipelines.generated",
        lambda v: str(drift.event_id).encode() in v,
        count=2,
    )
    assert {json.loads(m)["instance_version"] for m in messages} == {2}
    versions = (await client.get(f"{BASE}/instances/{instance_id}/versions", headers=headers)).json()
    assert [v["version"] for v in versions] == [1, 2]

    # the pipeline is scheduled, so the worker's scheduler runs the adapted version at once
    async def drift_runs() -> list[dict]:
        runs = (await client.get(f"{BASE}/instances/{instance_id}/runs", headers=headers)).json()
        return [run for run in runs if run["trigger"] == "drift"]

    [healed] = await eventually(drift_runs)
    assert healed["status"] == "success" and healed["instance_version"] == 2, healed
    assert await sql(runtime, f"SELECT id, amount, email FROM {schema}.orders_dw WHERE id = 4") == [
        (4, 40, "d@example.com")
    ]
