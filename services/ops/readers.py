"""Read-only summaries over the services' stores, through their own repositories and pure domains:
a diff of two baseline versions, feature freshness, run and cost summaries, a week profile of a
pipeline's load, and vector ingestion status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.drift import store as drift_store
from aietl.services.drift.domain import columns_from_stored, detect
from aietl.services.features import component as features
from aietl.services.features import registry
from aietl.services.features.stores.clickhouse_offline import TABLE as CLICKHOUSE_VALUES
from aietl.services.features.stores.clickhouse_offline import ClickHouseOfflineStore
from aietl.services.features.stores.sql_offline import SqlOfflineStore
from aietl.services.features.tables import OfflineValue
from aietl.services.predict import service as predict
from aietl.services.predict.domain import costs, window
from aietl.services.runtime import Runtime
from aietl.services.vector_sink import store as vector_store
from aietl.services.vector_sink.tables import CachedEmbedding, DocumentChunks
from aietl.shared.events.schema import Dialect, Drift

HOURS_PER_WEEK = 168


class SchemaDiff(BaseModel):
    connector_id: str
    table_name: str
    from_version: int
    to_version: int
    from_columns: list[dict[str, Any]]
    to_columns: list[dict[str, Any]]
    drifts: list[Drift]


async def schema_diff(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str, older: int, newer: int
) -> SchemaDiff | None:
    versions = {
        v.version: v for v in await drift_store.versions(session, project_id, connector_id, table_name)
    }
    if older not in versions or newer not in versions:
        return None
    before, after = versions[older].columns, versions[newer].columns
    dialect: Dialect = next((c["dialect"] for c in after if c.get("dialect")), "generic")
    drifts = detect(columns_from_stored(before), columns_from_stored(after), dialect)
    return SchemaDiff(
        connector_id=connector_id,
        table_name=table_name,
        from_version=older,
        to_version=newer,
        from_columns=before,
        to_columns=after,
        drifts=drifts,
    )


# --- features ------------------------------------------------------------------------------------


class FeatureFreshness(BaseModel):
    name: str
    version: int
    feature_view: str
    ttl_seconds: int
    values: int
    newest_event_at: datetime | None
    newest_written_at: datetime | None
    age_seconds: float | None
    """Now minus the newest value's event time."""
    fresh: bool
    """A value younger than the TTL exists (online reads can find one)."""


class FreshnessOut(BaseModel):
    as_of: datetime
    features: list[FeatureFreshness]


async def feature_freshness(runtime: Runtime, session: AsyncSession, project_id: str) -> FreshnessOut:
    now = datetime.now(UTC)
    newest = await _newest_offline_values(runtime, project_id)
    out = []
    for row in await registry.features(session, project_id):
        count, event_us, written_us = newest.get(f"{row.name}@v{row.version}", (0, None, None))
        age = None if event_us is None else (now - _from_us(event_us)).total_seconds()
        out.append(
            FeatureFreshness(
                name=row.name,
                version=row.version,
                feature_view=row.view,
                ttl_seconds=row.ttl_seconds,
                values=count,
                newest_event_at=None if event_us is None else _from_us(event_us),
                newest_written_at=None if written_us is None else _from_us(written_us),
                age_seconds=None if age is None else round(age, 3),
                fresh=age is not None and age <= row.ttl_seconds,
            )
        )
    return FreshnessOut(as_of=now, features=out)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


async def _newest_offline_values(runtime: Runtime, project_id: str) -> dict[str, tuple[int, int, int]]:
    """Per stored field (name@vN): value count, newest event time and newest write time (µs)."""
    offline = features.service_of(runtime).offline
    if isinstance(offline, ClickHouseOfflineStore):
        rows = await offline.clickhouse.query(
            f"SELECT feature, count(), max(event_us), max(written_us) FROM {CLICKHOUSE_VALUES} "
            "WHERE project_id = {project:String} GROUP BY feature",
            {"project": project_id},
        )
        return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}
    if isinstance(offline, SqlOfflineStore):
        query = (
            select(
                OfflineValue.feature,
                func.count(),
                func.max(OfflineValue.event_us),
                func.max(OfflineValue.written_us),
            )
            .where(OfflineValue.project_id == project_id)
            .group_by(OfflineValue.feature)
        )
        async with offline.database.sessions() as own:
            return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in await own.execute(query)}
    return {}


# --- pipeline runs (predictive maintenance) ------------------------------------------------------


class PipelineSummary(BaseModel):
    pipeline_id: str
    runs: int
    failed_runs: int
    last_run_at: datetime
    last_status: str
    mean_duration_seconds: float


class DailyCost(BaseModel):
    day: datetime
    cost_usd: float


class RunsSummary(BaseModel):
    project_id: str
    since: datetime
    pipelines: list[PipelineSummary]
    daily_costs: list[DailyCost]
    """The project's cost per UTC day (days without runs count 0), from runs that report `cost_usd`."""


async def _runs(runtime: Runtime, project_id: str, days: int, pipeline_id: str | None = None) -> pd.DataFrame:
    since = datetime.now(UTC) - timedelta(days=days)
    metrics = predict.service_of(runtime).store
    if pipeline_id is None:
        return await metrics.project_runs(project_id, since)
    return await metrics.pipeline_runs(project_id, pipeline_id, since)


async def runs_summary(runtime: Runtime, project_id: str, days: int) -> RunsSummary:
    runs = await _runs(runtime, project_id, days)
    pipelines = []
    for pipeline_id, group in runs.groupby("pipeline_id", sort=True) if not runs.empty else ():
        last = group.sort_values("started_at").iloc[-1]
        pipelines.append(
            PipelineSummary(
                pipeline_id=str(pipeline_id),
                runs=len(group),
                failed_runs=int((group["status"] == "failed").sum()),
                last_run_at=last["started_at"].to_pydatetime(),
                last_status=str(last["status"]),
                mean_duration_seconds=round(float(group["duration_seconds"].mean()), 3),
            )
        )
    priced = runs[runs["cost_usd"].notna()] if not runs.empty else runs
    daily: list[DailyCost] = []
    if not priced.empty:
        per_day = costs.daily_costs(priced).groupby("day")["cost"].sum()
        daily = [
            DailyCost(day=day.to_pydatetime(), cost_usd=round(float(value), 4))
            for day, value in zip(pd.DatetimeIndex(per_day.index), per_day.to_numpy(), strict=True)
        ]
    return RunsSummary(
        project_id=project_id,
        since=datetime.now(UTC) - timedelta(days=days),
        pipelines=pipelines,
        daily_costs=daily,
    )


class RunPoint(BaseModel):
    started_at: datetime
    status: str
    duration_seconds: float
    rows_read: int
    cpu_percent: float | None
    memory_mb: float | None
    disk_mb: float | None
    network_mb: float | None
    cost_usd: float | None


class PipelineProfile(BaseModel):
    pipeline_id: str
    impact: list[float]
    """168 values, Monday 00:00 UTC first: expected impact of maintenance in that hour (load share
    plus failure weight), the quantity the recommended maintenance window minimises."""
    runs_per_hour: list[int]
    """168 values: runs started in that hour of the week over the period."""
    recent: list[RunPoint]
    """The newest runs (at most `MAX_RUN_POINTS`), oldest first: the history behind a forecast."""


MAX_RUN_POINTS = 2_000


async def pipeline_profile(
    runtime: Runtime, project_id: str, pipeline_id: str, days: int
) -> PipelineProfile | None:
    runs = await _runs(runtime, project_id, days, pipeline_id)
    if runs.empty:
        return None
    impact = window.expected_impact(window.hourly_profile(runs))
    started = pd.DatetimeIndex(runs["started_at"]).tz_convert("UTC")
    hour_of_week = pd.Series(started.dayofweek * 24 + started.hour)
    counts = hour_of_week.value_counts().reindex(range(HOURS_PER_WEEK), fill_value=0)
    newest = runs.sort_values("started_at").tail(MAX_RUN_POINTS)
    fields = list(RunPoint.model_fields)
    recent = [
        RunPoint.model_validate({name: _plain(row[name]) for name in fields}) for _, row in newest.iterrows()
    ]
    return PipelineProfile(
        pipeline_id=pipeline_id,
        impact=[round(float(v), 4) for v in impact],
        runs_per_hour=[int(v) for v in counts.to_numpy()],
        recent=recent,
    )


def _plain(value: Any) -> Any:
    """A pandas cell as JSON-friendly Python (NaN and NaT as None)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


# --- vectors -------------------------------------------------------------------------------------


class CollectionStatus(BaseModel):
    connector_id: str
    connector_name: str
    store_type: str
    collection: str
    documents: int
    chunks: int
    pending_chunks: int
    """Chunks of a run that did not finish (written or not); the next ingest of the document settles them."""
    cache_lookups: int
    """Chunks written at their documents' last ingest that needed a vector (none of their own)."""
    cache_hits: int
    """Of those, how many took it from the embedding cache (same text embedded before by this model)."""
    cache_hit_rate: float | None
    """cache_hits / cache_lookups; null when nothing was looked up."""
    last_ingested_at: datetime | None


class CacheSize(BaseModel):
    model: str
    entries: int


class CollectionsOut(BaseModel):
    collections: list[CollectionStatus]
    embedding_cache: list[CacheSize] | None
    """Shared by every project, so shown to administrators only (null for others)."""


async def collections(session: AsyncSession, project_id: str, *, include_cache: bool) -> CollectionsOut:
    connectors = {row.id: row for row in await vector_store.list_connectors(session, project_id)}
    chunks = func.json_array_length(DocumentChunks.chunk_ids)
    rows = await session.execute(
        select(
            DocumentChunks.connector_id,
            DocumentChunks.collection,
            func.count().filter(chunks > 0),
            func.coalesce(func.sum(chunks), 0),
            func.coalesce(func.sum(func.json_array_length(DocumentChunks.pending_ids)), 0),
            func.coalesce(func.sum(DocumentChunks.cache_lookups), 0),
            func.coalesce(func.sum(DocumentChunks.cache_hits), 0),
            func.max(DocumentChunks.updated_at),
        )
        .where(DocumentChunks.project_id == project_id)
        .group_by(DocumentChunks.connector_id, DocumentChunks.collection)
        .order_by(DocumentChunks.connector_id, DocumentChunks.collection)
    )
    out = [
        CollectionStatus(
            connector_id=connector_id,
            connector_name=connectors[connector_id].name,
            store_type=connectors[connector_id].store_type,
            collection=collection,
            documents=int(documents),
            chunks=int(chunk_count),
            pending_chunks=int(pending),
            cache_lookups=int(lookups),
            cache_hits=int(hits),
            cache_hit_rate=int(hits) / int(lookups) if lookups else None,
            last_ingested_at=updated,
        )
        for connector_id, collection, documents, chunk_count, pending, lookups, hits, updated in rows
        if connector_id in connectors
    ]
    cache = None
    if include_cache:
        sizes = await session.execute(
            select(CachedEmbedding.model, func.count())
            .group_by(CachedEmbedding.model)
            .order_by(CachedEmbedding.model)
        )
        cache = [CacheSize(model=model, entries=count) for model, count in sizes]
    return CollectionsOut(collections=out, embedding_cache=cache)
