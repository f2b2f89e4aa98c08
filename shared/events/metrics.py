"""Contract of `metrics.ingested`: one pipeline run and what it cost."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from aietl.shared.events.base import Event, Name, Timestamp, Topic

RunStatus = Literal["success", "failed"]


class PipelineRunMetrics(Event):
    topic: ClassVar[str] = Topic.METRICS_INGESTED

    pipeline_id: Name
    run_id: Name = Field(description="Idempotency key of the run: the same run stored twice is one row.")
    status: RunStatus
    started_at: Timestamp
    ended_at: Timestamp
    duration_seconds: float = Field(ge=0)
    rows_read: int = Field(default=0, ge=0)
    rows_written: int = Field(default=0, ge=0)
    error_count: int = Field(default=0, ge=0)
    cpu_percent: float | None = Field(default=None, ge=0)
    memory_mb: float | None = Field(default=None, ge=0)
    memory_limit_mb: float | None = Field(
        default=None,
        gt=0,
        description="Memory available to the run: predictions measure headroom against it.",
    )
    disk_mb: float | None = Field(default=None, ge=0)
    disk_limit_mb: float | None = Field(
        default=None, gt=0, description="Disk capacity, for exhaustion forecasts."
    )
    network_mb: float | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    error_message: str | None = Field(default=None, max_length=4_000)

    @field_validator("ended_at")
    @classmethod
    def _ends_after_start(cls, ended_at: datetime, info: ValidationInfo) -> datetime:
        started_at = info.data.get("started_at")
        if started_at is not None and ended_at < started_at:
            raise ValueError(
                f"ended_at ({ended_at.isoformat()}) is before started_at ({started_at.isoformat()})"
            )
        return ended_at

    def partition_key(self) -> str:
        return self.pipeline_id
