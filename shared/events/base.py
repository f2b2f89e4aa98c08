"""The envelope every event shares and the registry of topics.

Contracts are versioned by `schema_version`: a breaking change gets a new version number and
consumers reject versions they do not know (the event goes to the dead-letter topic).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

ProjectId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


def _iso_8601_only(value: object) -> object:
    """The published contracts say `format: date-time`; pydantic alone also takes a number as Unix
    seconds, which no schema allows (the OpenAPI fuzz sent `occurred_at: 1.5` and got a 202)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("a timestamp is an ISO 8601 string with a time zone, not a number")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Strict parsing for everything that crosses a process boundary: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Event(Contract):
    """Envelope: identity for idempotency, tenancy, time and contract version."""

    topic: ClassVar[str]

    event_id: UUID = Field(
        default_factory=uuid4, description="Idempotency key: redelivery has no second effect."
    )
    project_id: ProjectId
    occurred_at: Timestamp = Field(default_factory=utc_now)
    schema_version: Literal[1] = 1

    def partition_key(self) -> str:
        """Kafka key: events with the same key keep their order."""
        return self.project_id

    def kafka_key(self) -> bytes:
        return self.partition_key().encode()


class Topic:
    """Topic names; `dlq(name)` is where that topic's undeliverable events go."""

    SCHEMA_OBSERVED = "schema.observed"
    DRIFT_DETECTED = "drift.detected"
    FEATURES_WRITTEN = "features.written"
    METRICS_INGESTED = "metrics.ingested"
    DOCUMENTS_INGESTED = "documents.ingested"
    PIPELINES_GENERATED = "pipelines.generated"
    MAINTENANCE_ALERTS = "maintenance.alerts"

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"
