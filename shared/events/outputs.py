"""Contracts the workers publish for whoever listens: generated pipelines and maintenance alerts."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from aietl.shared.events.base import Event, Name, Timestamp, Topic
from aietl.shared.events.schema import Severity


class PipelinesGenerated(Event):
    topic: ClassVar[str] = Topic.PIPELINES_GENERATED

    instance_id: Name
    pipeline_name: Name
    template_id: Name
    template_version: str
    instance_version: int = Field(ge=1)
    reason: Literal["control_table", "drift_adaptation", "manual"]
    drift_event_id: UUID | None = None

    def partition_key(self) -> str:
        return self.pipeline_name


class MaintenanceAlert(Event):
    topic: ClassVar[str] = Topic.MAINTENANCE_ALERTS

    pipeline_id: Name
    alert_type: Literal["failure_risk", "resource_exhaustion", "cost_anomaly"]
    probability: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    severity: Severity
    description: str
    episode_started_at: Timestamp

    def partition_key(self) -> str:
        return self.pipeline_id
