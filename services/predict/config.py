"""Predict service tuning, read from `AIETL_PREDICT_*` (the seed's MIN_HISTORICAL_DAYS and
PREDICTION_HORIZON_DAYS live in shared settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PredictSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIETL_PREDICT_", extra="ignore")

    alert_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    alert_clear_margin: float = Field(default=0.15, ge=0.0, le=1.0)
    alert_horizon_hours: int = Field(default=24, ge=1, le=168)
    retrain_interval_hours: float = Field(default=6.0, gt=0)
    retrain_new_runs_share: float = Field(default=0.2, gt=0)  # retrain after 20% more runs
    training_days: int = Field(default=60, ge=1)
    forest_trees: int = Field(default=100, ge=10)  # per horizon of the grid
    trainer_check_seconds: float = Field(default=60.0, gt=0)  # how often the worker's trainer looks
    model_refresh_seconds: float = Field(default=30.0, ge=0)  # how often a process looks for a newer model
    pipeline_cache_seconds: float = Field(default=60.0, ge=0)  # features of a pipeline without a new run here
    outcome_window_days: int = Field(default=7, ge=1)  # accuracy and prevention gauges look this far back
    forecast_history_hours: int = Field(default=24 * 42, ge=48)  # at most six weeks feed a forecast
    insert_batch_max: int = Field(default=1_000, ge=1)
