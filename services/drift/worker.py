"""Drift worker: `schema.observed` in; each new schema of a table becomes a baseline version."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.drift import store
from services.drift.domain import schema_hash
from services.drift.tables import SchemaVersion
from services.runtime import Runtime
from shared.bus import ServiceRouter
from shared.db import process_once
from shared.events import SchemaObserved, Topic

GROUP = "drift"


async def record_observation(session: AsyncSession, event: SchemaObserved) -> SchemaVersion | None:
    """Store the observation as the next version of its table unless it equals the latest one."""
    digest = schema_hash(event.columns)
    latest = await store.latest_version(session, event.project_id, event.connector_id, event.table_name)
    if latest is not None and latest.schema_hash == digest:
        return None
    version = SchemaVersion(
        project_id=event.project_id,
        connector_id=event.connector_id,
        table_name=event.table_name,
        version=1 if latest is None else latest.version + 1,
        schema_hash=digest,
        columns=[column.model_dump(mode="json") for column in event.columns],
        observed_event_id=str(event.event_id),
    )
    session.add(version)
    return version


def create_router(runtime: Runtime) -> ServiceRouter:
    router = ServiceRouter(runtime.broker, runtime.settings, GROUP)

    @router.consumes(Topic.SCHEMA_OBSERVED)
    async def on_schema_observed(event: SchemaObserved) -> None:
        async def work(session: AsyncSession) -> None:
            await record_observation(session, event)

        await process_once(runtime.database, GROUP, event.event_id, work, SchemaObserved)

    return router
