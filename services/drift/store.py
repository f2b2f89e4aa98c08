"""Repository of baselines, detections, policies, blocks and the audit trail (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import BindParameter, Row, bindparam, delete, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.drift.tables import AuditRecord, Block, Detection, Policy, SchemaVersion
from aietl.shared.events.schema import Severity, Strategy

OPEN_STATUSES = ("pending", "alerted", "blocked")  # "unblocked": closed by /unblock, decided anew
# Rendered as literals: the partial index `ix_drift_detections_open` applies only when the planner
# sees these very values.
_OPEN: BindParameter[Any] = bindparam("open_statuses", OPEN_STATUSES, expanding=True, literal_execute=True)
TableKey = tuple[str, str, str]  # project, connector, table


def _table(model: Any, project_id: str, connector_id: str, table_name: str) -> tuple[Any, ...]:
    return (
        model.project_id == project_id,
        model.connector_id == connector_id,
        model.table_name == table_name,
    )


async def latest_version(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str
) -> SchemaVersion | None:
    return await session.scalar(
        select(SchemaVersion)
        .where(*_table(SchemaVersion, project_id, connector_id, table_name))
        .order_by(SchemaVersion.version.desc())
        .limit(1)
    )


async def versions(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str
) -> list[SchemaVersion]:
    rows = await session.scalars(
        select(SchemaVersion)
        .where(*_table(SchemaVersion, project_id, connector_id, table_name))
        .order_by(SchemaVersion.version)
    )
    return list(rows)


async def baselines(session: AsyncSession, project_id: str, limit: int) -> list[SchemaVersion]:
    """The latest version of every table of the project."""
    latest = (
        select(
            SchemaVersion.connector_id,
            SchemaVersion.table_name,
            func.max(SchemaVersion.version).label("version"),
        )
        .where(SchemaVersion.project_id == project_id)
        .group_by(SchemaVersion.connector_id, SchemaVersion.table_name)
        .subquery()
    )
    rows = await session.scalars(
        select(SchemaVersion)
        .join(
            latest,
            (SchemaVersion.connector_id == latest.c.connector_id)
            & (SchemaVersion.table_name == latest.c.table_name)
            & (SchemaVersion.version == latest.c.version),
        )
        .where(SchemaVersion.project_id == project_id)
        .order_by(SchemaVersion.connector_id, SchemaVersion.table_name)
        .limit(limit)
    )
    return list(rows)


def _keyed(model: Any, keys: Collection[TableKey]) -> Any:
    return tuple_(model.project_id, model.connector_id, model.table_name).in_(list(keys))


async def latest_versions(session: AsyncSession, keys: Collection[TableKey]) -> dict[TableKey, Row[Any]]:
    """The current baseline of each table (one query for any number of tables), as plain rows:
    the worker only reads them, and ORM objects cost more to build than the query takes."""
    latest = (
        select(
            SchemaVersion.project_id,
            SchemaVersion.connector_id,
            SchemaVersion.table_name,
            func.max(SchemaVersion.version).label("version"),
        )
        .where(_keyed(SchemaVersion, keys))
        .group_by(SchemaVersion.project_id, SchemaVersion.connector_id, SchemaVersion.table_name)
        .subquery()
    )
    rows = await session.execute(
        select(
            SchemaVersion.project_id,
            SchemaVersion.connector_id,
            SchemaVersion.table_name,
            SchemaVersion.version,
            SchemaVersion.schema_hash,
            SchemaVersion.columns,
        ).join(
            latest,
            (SchemaVersion.project_id == latest.c.project_id)
            & (SchemaVersion.connector_id == latest.c.connector_id)
            & (SchemaVersion.table_name == latest.c.table_name)
            & (SchemaVersion.version == latest.c.version),
        )
    )
    return {(r.project_id, r.connector_id, r.table_name): r for r in rows}


async def insert_rows(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany `INSERT` for many rows (every row names the same columns): the ORM unit of
    work costs more per row than the database does."""
    if rows:
        await session.execute(insert(model.__table__), rows)


async def open_detections(session: AsyncSession, keys: Collection[TableKey]) -> list[Detection]:
    """Undecided detections of these tables, newest first."""
    rows = await session.scalars(
        select(Detection)
        .where(_keyed(Detection, keys), Detection.status.in_(_OPEN))
        .order_by(Detection.created_at.desc())
    )
    return list(rows)


async def blocked(session: AsyncSession, keys: Collection[TableKey]) -> set[TableKey]:
    rows = await session.execute(
        select(Block.project_id, Block.connector_id, Block.table_name).where(_keyed(Block, keys))
    )
    return {(p, c, t) for p, c, t in rows}


async def policies_of(session: AsyncSession, projects: Collection[str]) -> dict[TableKey, dict[str, Any]]:
    """Every policy of these projects by (project, connector scope, table scope)."""
    rows = await session.scalars(select(Policy).where(Policy.project_id.in_(list(projects))))
    return {(r.project_id, r.connector_id, r.table_name): r.strategies for r in rows}


async def detection(session: AsyncSession, project_id: str, detection_id: str) -> Detection | None:
    return await session.scalar(
        select(Detection).where(Detection.id == detection_id, Detection.project_id == project_id)
    )


async def detections(
    session: AsyncSession,
    project_id: str,
    connector_id: str | None,
    table_name: str | None,
    status: str | None,
    limit: int,
) -> list[Detection]:
    query = select(Detection).where(Detection.project_id == project_id)
    if connector_id is not None:
        query = query.where(Detection.connector_id == connector_id)
    if table_name is not None:
        query = query.where(Detection.table_name == table_name)
    if status is not None:
        query = query.where(Detection.status == status)
    rows = await session.scalars(query.order_by(Detection.created_at.desc()).limit(limit))
    return list(rows)


async def policies(session: AsyncSession, project_id: str) -> list[Policy]:
    rows = await session.scalars(
        select(Policy).where(Policy.project_id == project_id).order_by(Policy.connector_id, Policy.table_name)
    )
    return list(rows)


async def upsert_policy(
    session: AsyncSession,
    project_id: str,
    connector_id: str,
    table_name: str,
    strategies: Mapping[Severity, Strategy],
    actor: str,
) -> Policy:
    row = await session.scalar(
        select(Policy).where(*_table(Policy, project_id, connector_id, table_name)).with_for_update()
    )
    if row is None:
        row = Policy(project_id=project_id, connector_id=connector_id, table_name=table_name)
        session.add(row)
    row.strategies = {severity: strategy for severity, strategy in strategies.items()}
    row.updated_by = actor
    await session.flush()
    return row


async def block(session: AsyncSession, project_id: str, connector_id: str, table_name: str) -> Block | None:
    return await session.get(Block, (project_id, connector_id, table_name))


async def set_block(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str, detection_id: str
) -> None:
    if await block(session, project_id, connector_id, table_name) is None:
        session.add(
            Block(
                project_id=project_id,
                connector_id=connector_id,
                table_name=table_name,
                detection_id=detection_id,
            )
        )


async def blocked_detections(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str
) -> list[Detection]:
    """The table's detections still waiting in status `blocked`."""
    rows = await session.scalars(
        select(Detection).where(
            *_table(Detection, project_id, connector_id, table_name), Detection.status == "blocked"
        )
    )
    return list(rows)


async def clear_block(session: AsyncSession, project_id: str, connector_id: str, table_name: str) -> bool:
    result = await session.execute(delete(Block).where(*_table(Block, project_id, connector_id, table_name)))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def audit_trail(
    session: AsyncSession, project_id: str, connector_id: str | None, table_name: str | None, limit: int
) -> list[AuditRecord]:
    query = select(AuditRecord).where(AuditRecord.project_id == project_id)
    if connector_id is not None:
        query = query.where(AuditRecord.connector_id == connector_id)
    if table_name is not None:
        query = query.where(AuditRecord.table_name == table_name)
    rows = await session.scalars(query.order_by(AuditRecord.id.desc()).limit(limit))
    return list(rows)
