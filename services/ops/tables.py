"""Process heartbeats (every worker and gateway process writes its own) and the republication log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from aietl.shared.db import Base
from aietl.shared.events.base import utc_now


class Heartbeat(Base):
    """What one process last said of itself, per role it plays (a worker's name, or `gateway`):
    in production each worker runs in its own process, so a gateway cannot ask them directly."""

    __tablename__ = "ops_heartbeats"

    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance: Mapped[str] = mapped_column(String(255), primary_key=True)
    ready: Mapped[bool]
    checks: Mapped[dict[str, Any]] = mapped_column(JSON)
    """component -> "ok" or "error: <type>", as /ready answers."""
    lag: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """[{topic, partition, lag}] of the partitions this role's consumer group holds in the process."""
    started_at: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(default=utc_now)


class Republication(Base):
    """A dead letter someone republished: who, when, and the event that went out (one row per letter,
    so the console can say a letter was already republished)."""

    __tablename__ = "ops_republications"
    __table_args__ = (Index("ix_ops_republications_project", "project_id", "republished_at"),)

    dlq_topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    dlq_partition: Mapped[int] = mapped_column(primary_key=True)
    dlq_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    original_topic: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str] = mapped_column(String(36))
    republished_by: Mapped[str] = mapped_column(String(128))
    republished_at: Mapped[datetime] = mapped_column(default=utc_now)
