"""Templates figures: dry-run generation of 500 control-table entries, and the SCD2 apply rate on
PostgreSQL for 1M source rows (first load, a late/out-of-order batch, and an idle rerun).

Runs against a fresh PostgreSQL database (TEST_POSTGRES_URL's server), dropped afterwards.
Sizes follow `AIETL_BENCH_SCALE` (the smoke run: 20 entries, 2,000 SCD2 rows). The machine may be
shared: the CPU seconds of the dry run and the load average are reported beside wall time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from aietl.services.runtime import Runtime
from aietl.services.templates.builtin import builtin
from aietl.services.templates.domain.config import validated
from aietl.services.templates.domain.rendering import render
from aietl.services.templates.service import service_of
from aietl.services.templates.tables import ControlEntry
from aietl.services.templates.targets import SqlAlchemyTarget
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from bench import Scale
from tests.support import fresh_postgres_database

POSTGRES_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GENERATION_ROUNDS = 5
PATTERNS = ("incremental", "cdc", "scd2", "full_load")
WAREHOUSE = "warehouse"
"""The run target of the generated pipelines: an operator connection to the bench database."""


def _entry(project: str, index: int) -> ControlEntry:
    pattern = PATTERNS[index % len(PATTERNS)]
    columns = [{"name": "id"}, {"name": "customer"}, {"name": "amount", "source": "amt"}, {"name": "seq"}]
    config: dict[str, Any] = {"columns": columns}
    if pattern in ("cdc", "scd2"):
        config["operation_column"] = "op"
    return ControlEntry(
        id=str(uuid.uuid4()),
        project_id=project,
        source_system="erp",
        source_object=f"raw.table_{index}",
        target_system=WAREHOUSE,
        target_object=f"dw.table_{index}",
        template_id=f"{pattern}_postgres",
        load_type=pattern,
        watermark_column=None if pattern == "full_load" else "seq",
        keys=["id"],
        enabled=True,
        run_order=index,
        config=config,
    )


async def generation(runtime: Runtime, entries: int) -> dict[str, Any]:
    project = "bench"
    async with runtime.database.transaction() as session:
        session.add_all(_entry(project, index) for index in range(entries))
    service = service_of(runtime)
    await service.ensure_builtins()
    timings, cpu = [], []
    for _ in range(GENERATION_ROUNDS):
        started, cpu_started = time.perf_counter(), time.process_time()
        results = await service.generate(project, dry_run=True)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    assert len(results) == entries and not any(r.errors for r in results), "bench entries must be valid"
    return {
        "dry_run_entries": entries,
        "dry_run_seconds_median": round(statistics.median(timings), 3),
        "dry_run_seconds_best": round(min(timings), 3),
        "dry_run_cpu_seconds_median": round(statistics.median(cpu), 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "dry_run_goal_seconds_for_500": 2.0,
    }


async def scd2_apply(runtime: Runtime, rows: int) -> dict[str, Any]:
    target = SqlAlchemyTarget(runtime.database.engine)
    template = builtin("scd2_postgres")
    config = {
        "source": {"schema": "bench", "name": "changes"},
        "target": {"schema": "bench", "name": "customers_history"},
        "columns": [{"name": "id"}, {"name": "name"}, {"name": "tier"}, {"name": "seq"}],
        "keys": ["id"],
        "sequence_column": "seq",
        "operation_column": "op",
        "hard_deletes": "invalidate",
    }
    statements = render(template.code, "postgres", validated(template.config_schema, config)).statements
    keys = rows // 2
    async with runtime.database.engine.begin() as connection:
        await connection.exec_driver_sql("CREATE SCHEMA bench")
        await connection.exec_driver_sql(
            "CREATE TABLE bench.changes AS SELECT k AS id, 'customer ' || k AS name, "
            "CASE WHEN v = 1 THEN 'basic' WHEN k % 2 = 0 THEN 'gold' ELSE 'basic' END AS tier, "
            "v * 10 AS seq, CASE WHEN v = 2 AND k % 50 = 0 THEN 'DELETE' ELSE 'UPSERT' END AS op "
            f"FROM generate_series(1, {keys}) AS k, generate_series(1, 2) AS v"
        )
        await connection.exec_driver_sql("ANALYZE bench.changes")

    started = time.perf_counter()
    first = await target.execute(statements)
    first_seconds = time.perf_counter() - started

    late = rows // 10
    async with runtime.database.engine.begin() as connection:
        await connection.exec_driver_sql(  # late rows between the two versions, and newer changes
            "INSERT INTO bench.changes SELECT k, 'customer ' || k, 'silver', "
            "CASE WHEN k % 2 = 0 THEN 15 ELSE 30 END, 'UPSERT' "
            f"FROM generate_series(1, {late}) AS k"
        )
    started = time.perf_counter()
    second = await target.execute(statements)
    second_seconds = time.perf_counter() - started

    started = time.perf_counter()
    idle = await target.execute(statements)
    idle_seconds = time.perf_counter() - started
    return {
        "scd2_source_rows": first.rows_read,
        "scd2_first_load_seconds": round(first_seconds, 2),
        "scd2_first_load_rows_per_second": round(first.rows_read / first_seconds),
        "scd2_first_load_versions_written": first.rows_written,
        "scd2_late_batch_source_rows": second.rows_read,
        "scd2_late_batch_seconds": round(second_seconds, 2),
        "scd2_late_batch_rows_per_second": round(second.rows_read / second_seconds),
        "scd2_late_batch_versions_changed": second.rows_written,
        "scd2_idle_rerun_seconds": round(idle_seconds, 2),
        "scd2_idle_rerun_rows_written": idle.rows_written,
    }


async def _main(database_url: str, scale: Scale) -> dict[str, Any]:
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers="127.0.0.1:1",
        templates_connections={WAREHOUSE: database_url},
    )
    await upgrade_async(settings.resolved_database_url)
    runtime = Runtime(settings, client_id="bench-templates")
    try:
        figures = await generation(runtime, scale.count(500, smoke=20))
        figures.update(await scd2_apply(runtime, scale.count(1_000_000, smoke=2_000)))
        return figures
    finally:
        await runtime.close()


def run(scale: Scale) -> dict[str, object]:
    with fresh_postgres_database(POSTGRES_ADMIN, "aietl_bench_templates") as url:
        return asyncio.run(_main(url, scale))
