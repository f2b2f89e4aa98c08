"""Templates persistence: template versions, the control table, pipeline instances (versioned) and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aietl.services.templates.domain.model import SqlDialect
from aietl.services.templates.domain.schedule import CatchUp
from aietl.shared.db import Base
from aietl.shared.events.base import utc_now


class TemplateVersion(Base):
    """One immutable version of a template; `project_id` is `_builtin` for the shipped ones."""

    __tablename__ = "templates_versions"
    __table_args__ = (UniqueConstraint("project_id", "template_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    template_id: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(32))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    pattern: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32))
    dialect: Mapped[SqlDialect | None] = mapped_column(String(32), default=None)
    """None: a portable template, rendered for the dialect of the connection it is instantiated on."""
    display_name: Mapped[str | None] = mapped_column(String(255), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    config_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    code: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ControlEntry(Base):
    """A row of the control table: what to load from where to where, with which template."""

    __tablename__ = "templates_control_entries"
    __table_args__ = (UniqueConstraint("project_id", "target_system", "target_object"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    source_system: Mapped[str] = mapped_column(String(255))
    source_object: Mapped[str] = mapped_column(String(255))
    target_system: Mapped[str] = mapped_column(String(255))
    target_object: Mapped[str] = mapped_column(String(255))
    template_id: Mapped[str] = mapped_column(String(255))
    load_type: Mapped[str] = mapped_column(String(32))
    watermark_column: Mapped[str | None] = mapped_column(String(255), default=None)
    keys: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    run_order: Mapped[int] = mapped_column(Integer, default=0)
    schedule: Mapped[str | None] = mapped_column(String(255), default=None)
    schedule_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    catch_up: Mapped[CatchUp | None] = mapped_column(String(16), default=None)
    max_retries: Mapped[int | None] = mapped_column(Integer, default=None)
    retry_backoff_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class PipelineInstance(Base):
    """One version of a pipeline: template version + config + the code rendered from them."""

    __tablename__ = "templates_instances"
    __table_args__ = (UniqueConstraint("project_id", "pipeline_name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    pipeline_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    template_scope: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[str] = mapped_column(String(255))
    template_version: Mapped[str] = mapped_column(String(32))
    dialect: Mapped[SqlDialect] = mapped_column(String(32))
    connection: Mapped[str] = mapped_column(String(255))
    source_system: Mapped[str | None] = mapped_column(String(255), default=None)
    source_object: Mapped[str | None] = mapped_column(String(255), default=None)
    control_entry_id: Mapped[str | None] = mapped_column(String(36), default=None)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    code: Mapped[str] = mapped_column(Text)
    code_sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    drift_event_id: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class PipelineRun(Base):
    __tablename__ = "templates_runs"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    instance_version: Mapped[int] = mapped_column(Integer)
    pipeline_name: Mapped[str] = mapped_column(String(255))
    template_scope: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[str] = mapped_column(String(255))
    template_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    """schedule, manual or drift."""
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    duration_seconds: Mapped[float] = mapped_column(Float)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_written: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    high_watermark: Mapped[str | None] = mapped_column(String(255), default=None)
    cpu_percent: Mapped[float | None] = mapped_column(Float, default=None)
    memory_mb: Mapped[float | None] = mapped_column(Float, default=None)
    warnings: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class PipelineState(Base):
    """What a pipeline carries from run to run: its high watermark and, for topics, the next offsets."""

    __tablename__ = "templates_pipeline_state"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    high_watermark: Mapped[str | None] = mapped_column(String(255), default=None)
    stream_offsets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class PipelineSchedule(Base):
    """When a pipeline runs on its own: its cron schedule and policy, and the scheduler's state
    (`domain.schedule.State`). `due_at` is the state's due time, kept as a column to query on."""

    __tablename__ = "templates_schedules"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    cron: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    catch_up: Mapped[CatchUp | None] = mapped_column(String(16), default=None)
    max_retries: Mapped[int | None] = mapped_column(Integer, default=None)
    retry_backoff_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    slot_at: Mapped[datetime]
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(default=None)
    requested_at: Mapped[datetime | None] = mapped_column(default=None)
    due_at: Mapped[datetime] = mapped_column(index=True)
    last_run_id: Mapped[str | None] = mapped_column(String(36), default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status: Mapped[str | None] = mapped_column(String(16), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class ProjectConnection(Base):
    """A run target a project's maintainer added; the URL (with its password) only sealed."""

    __tablename__ = "templates_connections"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(String(1024))
    sealed_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
