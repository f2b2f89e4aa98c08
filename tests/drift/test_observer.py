"""Live introspection of real PostgreSQL, SQLite and ClickHouse tables; the REST trigger and the CLI."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path

import httpx
from click.testing import CliRunner
from sqlalchemy import text

from aietl.services.cli import cli
from aietl.services.drift import observer, store
from aietl.services.drift.domain import normalise
from aietl.services.runtime import Runtime
from aietl.shared.events import Topic
from tests.support import eventually, read_topic


def _by_name(columns):
    return {c.name: c for c in columns}


async def test_reads_a_postgres_table(runtime: Runtime) -> None:
    table = f"drift_obs_{uuid.uuid4().hex[:8]}"
    async with runtime.database.transaction() as session:
        await session.execute(
            text(
                f"CREATE TABLE {table} (id bigserial PRIMARY KEY, amount numeric(10,2) NOT NULL, "
                "tags integer[], seen timestamptz, name varchar(40))"
            )
        )
        await session.execute(text(f"INSERT INTO {table} (amount, name) VALUES (1.5, 'a'), (2.5, 'b')"))
    url = runtime.settings.resolved_database_url
    columns = _by_name((await observer.read_sql_tables(url, [table], samples=5)).columns[table])
    canonical = {name: normalise(c.type, "postgres").canonical for name, c in columns.items()}
    assert canonical == {
        "id": "int64",
        "amount": "decimal(10,2)",
        "tags": "array<int32>",
        "seen": "timestamptz",
        "name": "string(40)",
    }
    assert columns["id"].primary_key and not columns["id"].nullable and not columns["amount"].nullable
    assert sorted(columns["name"].sample_values) == ["a", "b"]
    assert columns["name"].distinct_ratio == 1.0 and columns["seen"].null_ratio == 1.0


async def test_reads_a_sqlite_table_and_the_rest_trigger_publishes(
    runtime: Runtime, client: httpx.AsyncClient, auth
) -> None:
    path = runtime.settings.data_dir / f"source-{uuid.uuid4().hex[:6]}.db"  # REST reads only in there
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(20) NOT NULL, price REAL)"
        )
    columns = _by_name((await observer.read_sql_tables(f"sqlite:///{path}", ["items"])).columns["items"])
    assert normalise(columns["label"].type, "sqlite").canonical == "string(20)" and columns["id"].primary_key

    connector = f"lite_{uuid.uuid4().hex[:6]}"
    body = {"connector_id": connector, "tables": ["items"], "url": f"sqlite:///{path}"}
    response = await client.post("/api/v1/advanced/schema-drift/observe", json=body, headers=auth)
    assert response.status_code == 202, response.text

    async def versions() -> list[int]:
        async with runtime.database.sessions() as session:
            return [v.version for v in await store.versions(session, "default", connector, "items")]

    assert await eventually(versions) == [1]
    missing = await client.post(
        "/api/v1/advanced/schema-drift/observe", json={**body, "tables": ["nope"]}, headers=auth
    )
    assert missing.status_code == 422 and missing.json()["errors"][0]["pointer"] == "/body/tables"
    assert "nope" in missing.json()["errors"][0]["message"]
    partly = await client.post(  # one table read, the other reported: never dropped silently
        "/api/v1/advanced/schema-drift/observe", json={**body, "tables": ["items", "nope"]}, headers=auth
    )
    assert partly.status_code == 202 and partly.json()["tables"] == ["items"]
    assert partly.json()["failed"] == [{"table": "nope", "reason": "'nope' does not exist"}]
    bad = await client.post(
        "/api/v1/advanced/schema-drift/observe", json={**body, "url": "ftp://x"}, headers=auth
    )
    assert bad.status_code == 422 and "url" in bad.json()["errors"][0]["pointer"].split("/")


async def test_reads_a_clickhouse_table(runtime: Runtime) -> None:
    clickhouse = runtime.clickhouse()
    table = f"obs_{uuid.uuid4().hex[:8]}"
    await clickhouse.command("CREATE DATABASE IF NOT EXISTS drift")
    await clickhouse.command(
        f"CREATE TABLE drift.{table} (id UInt64, name Nullable(String), kind LowCardinality(String), "
        "at DateTime64(3, 'UTC'), price Decimal(12, 2)) ENGINE = MergeTree ORDER BY id"
    )
    await clickhouse.command(f"INSERT INTO drift.{table} VALUES (1, 'x', 'k', now64(3), 9.5)")
    observation = await observer.read_clickhouse_tables(clickhouse, [f"drift.{table}"], samples=3)
    columns = _by_name(observation.columns[f"drift.{table}"])
    assert columns["id"].primary_key and not columns["id"].nullable and columns["name"].nullable
    assert normalise(columns["at"].type, "clickhouse").canonical == "timestamptz"
    assert normalise(columns["price"].type, "clickhouse").canonical == "decimal(12,2)"
    assert columns["name"].sample_values == ["x"]
    await clickhouse.command(f"DROP TABLE drift.{table}")


async def test_cli_observe_publishes_schema_observed(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY, page TEXT)")
    connector = f"cli_{uuid.uuid4().hex[:6]}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": runtime.settings.resolved_kafka_servers,
        "AIETL_DATA_DIR": str(tmp_path),
    }
    args = ["observe", "--url", f"sqlite:///{path}", "--tables", "visits", "--connector-id", connector]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    assert result.exit_code == 0, result.output
    found = await read_topic(
        runtime.settings.resolved_kafka_servers,
        Topic.SCHEMA_OBSERVED,
        lambda value: connector.encode() in value,
    )
    event = json.loads(found[0])
    assert event["table_name"] == "visits" and event["dialect"] == "sqlite"
    assert [c["name"] for c in event["columns"]] == ["id", "page"]
