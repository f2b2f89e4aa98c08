"""The shared ClickHouse client runs real ClickHouse SQL (chDB) from async code."""

from __future__ import annotations

import asyncio
import uuid

from aietl.services.runtime import Runtime


async def test_shared_client_runs_sql_serially(runtime: Runtime) -> None:
    clickhouse = runtime.clickhouse()
    assert clickhouse is runtime.clickhouse()
    table = f"default.t_{uuid.uuid4().hex[:8]}"
    await clickhouse.command(f"CREATE TABLE {table} (id UInt32, v Float64) ENGINE = MergeTree ORDER BY id")
    await asyncio.gather(*(clickhouse.insert(table, [(i, i / 2)], ["id", "v"]) for i in range(20)))
    assert await clickhouse.query(f"SELECT count(), sum(v) FROM {table}") == [(20, 95.0)]
    assert await clickhouse.query("SELECT {x:UInt8} + 1", {"x": 41}) == [(42,)]
    assert "clickhouse" in runtime.readiness
    await clickhouse.command(f"DROP TABLE {table}")
