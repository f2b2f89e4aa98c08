"""Feature registry (entities, views, feature versions), materialisation watermarks, SQL offline values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aietl.services.features.domain import StorageType
from aietl.shared.db import Base
from aietl.shared.events.base import utc_now


class Entity(Base):
    __tablename__ = "features_entities"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class FeatureView(Base):
    """A group of features of one entity from one source; `kind` on_demand views compute at read time."""

    __tablename__ = "features_views"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default="batch")  # batch | on_demand
    entity: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(255), default="")
    pipeline_id: Mapped[str | None] = mapped_column(String(255), default=None)
    ttl_seconds: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(String(255), default="")
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    # on-demand only: input feature refs, request fields (name -> type), outputs (name -> expression)
    inputs: Mapped[list[str]] = mapped_column(JSON, default=list)
    request_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    transform: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class FeatureVersion(Base):
    """One version of a feature; a changed definition (type, entity, view, source, storage, TTL) adds one."""

    __tablename__ = "features_versions"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    feature_type: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(128))
    view: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(255), default="")
    pipeline_id: Mapped[str | None] = mapped_column(String(255), default=None)
    storage_type: Mapped[StorageType] = mapped_column(String(16))
    ttl_seconds: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text, default="")
    definition_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Materialization(Base):
    """Where incremental materialisation of a view stopped (write sequence of the offline store)."""

    __tablename__ = "features_materializations"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    view: Mapped[str] = mapped_column(String(128), primary_key=True)
    watermark: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class OfflineValue(Base):
    """Offline store on SQL (PostgreSQL/SQLite): one row per (feature version, entity, event time)."""

    __tablename__ = "features_offline_values"
    __table_args__ = (Index("ix_features_offline_values_written", "project_id", "written_us"),)

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    feature: Mapped[str] = mapped_column(String(160), primary_key=True)  # name@vN
    entity_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_us: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON
    written_us: Mapped[int] = mapped_column(BigInteger)
