"""Run metrics in ClickHouse (chDB embedded, a server in production): one row per run id.

`ReplacingMergeTree` keyed by (project, pipeline, run id) collapses a run stored twice into one row;
reads use `FINAL` so duplicates not merged yet never show.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from aietl.services.predict.domain import RUN_COLUMNS
from aietl.shared.clickhouse import ClickHouse
from aietl.shared.events import PipelineRunMetrics

DATABASE = "predict"
TABLE = f"{DATABASE}.runs"
COLUMNS = (*RUN_COLUMNS, "error_message", "event_id", "ingested_at")
SCHEMA = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"""
    CREATE TABLE IF NOT EXISTS {TABLE} (
        project_id String,
        pipeline_id String,
        run_id String,
        status LowCardinality(String),
        started_at DateTime64(3, 'UTC'),
        ended_at DateTime64(3, 'UTC'),
        duration_seconds Float64,
        rows_read UInt64,
        rows_written UInt64,
        error_count UInt64,
        cpu_percent Nullable(Float64),
        memory_mb Nullable(Float64),
        memory_limit_mb Nullable(Float64),
        disk_mb Nullable(Float64),
        disk_limit_mb Nullable(Float64),
        network_mb Nullable(Float64),
        cost_usd Nullable(Float64),
        error_message Nullable(String),
        event_id String,
        ingested_at DateTime64(6, 'UTC')
    ) ENGINE = ReplacingMergeTree(ingested_at)
    ORDER BY (project_id, pipeline_id, run_id)
    """,
)
READ_COLUMNS = ", ".join(RUN_COLUMNS)


def row_of(event: PipelineRunMetrics, ingested_at: datetime) -> list[object]:
    return [
        event.project_id,
        event.pipeline_id,
        event.run_id,
        event.status,
        event.started_at,
        event.ended_at,
        event.duration_seconds,
        event.rows_read,
        event.rows_written,
        event.error_count,
        event.cpu_percent,
        event.memory_mb,
        event.memory_limit_mb,
        event.disk_mb,
        event.disk_limit_mb,
        event.network_mb,
        event.cost_usd,
        event.error_message,
        str(event.event_id),
        ingested_at,
    ]


class MetricsStore:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse
        self._ready = False

    async def ensure_schema(self) -> None:
        if not self._ready:
            for statement in SCHEMA:
                await self.clickhouse.command(statement)
            self._ready = True

    async def insert(self, rows: Sequence[Sequence[object]]) -> None:
        await self.ensure_schema()
        await self.clickhouse.insert(TABLE, rows, COLUMNS)

    async def pipeline_runs(self, project_id: str, pipeline_id: str, since: datetime) -> pd.DataFrame:
        return await self._runs(
            "project_id = {project:String} AND pipeline_id = {pipeline:String}"
            " AND started_at >= {since:DateTime64(3)}",
            {"project": project_id, "pipeline": pipeline_id, "since": since},
        )

    async def daily_costs(self, project_id: str) -> pd.DataFrame:
        """Cost and failed-run cost per pipeline per UTC day over the project's whole stored history
        (aggregated by ClickHouse: one row per pipeline-day, however many runs)."""
        await self.ensure_schema()
        frame = await self.clickhouse.query_df(
            "SELECT pipeline_id, toStartOfDay(started_at) AS day, sum(cost_usd) AS cost,"
            " sumIf(cost_usd, status = 'failed') AS failed_cost"
            f" FROM {TABLE} FINAL WHERE project_id = {{project:String}} AND cost_usd IS NOT NULL"
            " GROUP BY pipeline_id, day ORDER BY pipeline_id, day",
            {"project": project_id},
        )
        if frame.empty:
            return pd.DataFrame(columns=["pipeline_id", "day", "cost", "failed_cost"])
        frame["day"] = pd.to_datetime(frame["day"], utc=True)
        return frame.astype({"cost": float, "failed_cost": float})

    async def project_runs(self, project_id: str, since: datetime) -> pd.DataFrame:
        """A project's runs of every pipeline (the console's run summary)."""
        return await self._runs(
            "project_id = {project:String} AND started_at >= {since:DateTime64(3)}",
            {"project": project_id, "since": since},
        )

    async def all_runs(self, since: datetime) -> pd.DataFrame:
        """Every project's runs: the failure model learns across pipelines (it returns no one's data)."""
        return await self._runs("started_at >= {since:DateTime64(3)}", {"since": since})

    async def latest_run(self, project_id: str, pipeline_id: str) -> datetime | None:
        """Start of the pipeline's latest run, however old (None if it never ran)."""
        await self.ensure_schema()
        rows = await self.clickhouse.query(
            f"SELECT count(), max(started_at) FROM {TABLE}"
            " WHERE project_id = {project:String} AND pipeline_id = {pipeline:String}",
            {"project": project_id, "pipeline": pipeline_id},
        )
        if not rows or not rows[0][0]:
            return None
        latest = pd.Timestamp(rows[0][1])
        return (
            latest.tz_localize("UTC") if latest.tzinfo is None else latest.tz_convert("UTC")
        ).to_pydatetime()

    async def count_runs_since(self, since: datetime) -> int:
        await self.ensure_schema()
        rows = await self.clickhouse.query(
            f"SELECT count() FROM {TABLE} WHERE started_at >= {{since:DateTime64(3)}}",
            {"since": since},
        )
        return int(rows[0][0])

    async def _runs(self, where: str, parameters: dict[str, object]) -> pd.DataFrame:
        await self.ensure_schema()
        frame = await self.clickhouse.query_df(
            f"SELECT {READ_COLUMNS} FROM {TABLE} FINAL WHERE {where} ORDER BY pipeline_id, started_at",
            parameters,
        )
        if frame.empty:
            return pd.DataFrame(columns=[c for c in READ_COLUMNS.split(", ")])
        for column in ("started_at", "ended_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame
