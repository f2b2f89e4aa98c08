"""Repository of baseline schema versions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.drift.tables import SchemaVersion


async def latest_version(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str
) -> SchemaVersion | None:
    return await session.scalar(
        select(SchemaVersion)
        .where(
            SchemaVersion.project_id == project_id,
            SchemaVersion.connector_id == connector_id,
            SchemaVersion.table_name == table_name,
        )
        .order_by(SchemaVersion.version.desc())
        .limit(1)
    )


async def versions(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str
) -> list[SchemaVersion]:
    rows = await session.scalars(
        select(SchemaVersion)
        .where(
            SchemaVersion.project_id == project_id,
            SchemaVersion.connector_id == connector_id,
            SchemaVersion.table_name == table_name,
        )
        .order_by(SchemaVersion.version)
    )
    return list(rows)
