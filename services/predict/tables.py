"""Predict persistence in the SQL store: alert episodes (the run metrics live in ClickHouse)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.events.base import utc_now


class AlertEpisode(Base):
    """One stretch of time during which a pipeline's risk stayed above the alert threshold.

    The alert is stored with the episode (outbox): if publishing fails it is sent again on the
    next evaluation, and `published_at` says it went out.
    """

    __tablename__ = "predict_alert_episodes"
    __table_args__ = (
        Index("ix_predict_alert_episodes_open", "project_id", "pipeline_id", "alert_type", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    pipeline_id: Mapped[str] = mapped_column(String(255))
    alert_type: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(default=utc_now)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    peak_probability: Mapped[float] = mapped_column(Float)
    alert: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
