"""Drift persistence: baseline schema versions per (project, connector, table)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from aietl.shared.db import Base
from aietl.shared.events.base import utc_now
from aietl.shared.events.schema import Strategy

OPEN_PREDICATE = "status IN ('pending', 'alerted', 'blocked')"


class SchemaVersion(Base):
    __tablename__ = "drift_schema_versions"
    __table_args__ = (UniqueConstraint("project_id", "connector_id", "table_name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    connector_id: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    schema_hash: Mapped[str] = mapped_column(String(64))
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    observed_event_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Policy(Base):
    """Severity -> strategy for a table, a connector (`table_name="*"`) or the project (`*`, `*`)."""

    __tablename__ = "drift_policies"
    __table_args__ = (UniqueConstraint("project_id", "connector_id", "table_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64))
    connector_id: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(255))
    strategies: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class Detection(Base):
    """One observed change of a table and what was decided about it."""

    __tablename__ = "drift_detections"
    __table_args__ = (
        Index("ix_drift_detections_table", "project_id", "connector_id", "table_name"),
        # the undecided ones, which every batch of observations looks up (migration drift_0003)
        Index(
            "ix_drift_detections_open",
            "project_id",
            "connector_id",
            "table_name",
            postgresql_where=text(OPEN_PREDICATE),
            sqlite_where=text(OPEN_PREDICATE),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    connector_id: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(255))
    observed_event_id: Mapped[str] = mapped_column(String(36))
    dialect: Mapped[str] = mapped_column(String(16))
    baseline_version: Mapped[int]
    new_version: Mapped[int | None]
    before_hash: Mapped[str] = mapped_column(String(64))
    after_hash: Mapped[str] = mapped_column(String(64))
    observed_columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    drifts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    strategy: Mapped[Strategy] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    analysis: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    decided_by: Mapped[str] = mapped_column(String(255))


class AuditRecord(Base):
    """Who or what did what to a table's schema, with the hashes before and after."""

    __tablename__ = "drift_audit"
    __table_args__ = (Index("ix_drift_audit_table", "project_id", "connector_id", "table_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64))
    connector_id: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(255))
    detection_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    strategy: Mapped[str | None] = mapped_column(String(16))
    before_hash: Mapped[str | None] = mapped_column(String(64))
    after_hash: Mapped[str | None] = mapped_column(String(64))
    drifts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Block(Base):
    """A source table blocked by a `fail` decision until someone adapts or unblocks it."""

    __tablename__ = "drift_blocks"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    connector_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    detection_id: Mapped[str] = mapped_column(String(36))
    blocked_at: Mapped[datetime] = mapped_column(default=utc_now)
