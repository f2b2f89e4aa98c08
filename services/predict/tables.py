"""Predict persistence in the SQL store: alert episodes, the model registry and prediction outcomes
(the run metrics live in ClickHouse)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column

from aietl.shared.db import Base
from aietl.shared.events.base import utc_now


class AlertEpisode(Base):
    """One stretch of time during which a pipeline's risk stayed above the alert threshold.

    The alert is stored with the episode and enqueued in the outbox in the same transaction
    (`published_at`: when; the relay publishes it). Once `as_of + horizon_hours` has passed
    and later runs are known, the episode is resolved: `prevented` says whether the pipeline got
    through the predicted window without a failure, `saving_usd` what that saved (docs/predict.md).
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
    as_of: Mapped[datetime | None] = mapped_column(default=None)
    horizon_hours: Mapped[float | None] = mapped_column(Float, default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    prevented: Mapped[bool | None] = mapped_column(Boolean, default=None)
    saving_usd: Mapped[float | None] = mapped_column(Float, default=None)


class ModelVersion(Base):
    """One training attempt of the failure model: the registry lists them, questions use the latest ready one.

    `model` holds the arrays-only serialization of `FailureModel` (numpy archive read with
    `allow_pickle=False`): nothing stored here can run code when loaded.
    """

    __tablename__ = "predict_model_versions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # training | ready | refused | failed
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    horizons: Mapped[list[float]] = mapped_column(JSON, default=list)
    window_start: Mapped[datetime | None] = mapped_column(default=None)
    window_end: Mapped[datetime | None] = mapped_column(default=None)
    training_runs: Mapped[int] = mapped_column(Integer, default=0)
    stored_runs: Mapped[int] = mapped_column(Integer, default=0)  # runs in the window when it started
    positives: Mapped[int] = mapped_column(Integer, default=0)
    data_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # why refused or failed
    # wall time, and CPU time: on a machine busy with other work the wall time is mostly waiting
    training_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    training_cpu_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    model_bytes: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, default=None))


class PredictionOutcome(Base):
    """An alerting prediction (at most one per pipeline, horizon and hour) and, once known, what happened.

    Scored when `as_of + horizon_hours` has passed and a later run of the pipeline is stored:
    `failed` says whether a failure came within the window; with `predicted_failure` that makes it
    a true or false positive or negative (the accuracy metrics).
    """

    __tablename__ = "predict_prediction_outcomes"
    __table_args__ = (UniqueConstraint("project_id", "pipeline_id", "horizon_hours", "as_of_hour"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64))
    pipeline_id: Mapped[str] = mapped_column(String(255))
    horizon_hours: Mapped[float] = mapped_column(Float)
    as_of: Mapped[datetime] = mapped_column()
    as_of_hour: Mapped[datetime] = mapped_column()
    probability: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    predicted_failure: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    failed: Mapped[bool | None] = mapped_column(Boolean, default=None)
