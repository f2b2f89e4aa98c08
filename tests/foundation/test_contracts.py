"""Every event contract survives a JSON round trip and rejects what it must."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from aietl.shared.events import (
    CONTRACTS,
    DeadLetter,
    DocumentIngested,
    DriftDetected,
    Event,
    FeaturesWritten,
    MaintenanceAlert,
    PipelineRunMetrics,
    PipelinesGenerated,
    SchemaObserved,
    Topic,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EXAMPLES: list[Event] = [
    SchemaObserved(
        project_id="p1",
        connector_id="pg",
        table_name="users",
        dialect="postgres",
        columns=[{"name": "id", "type": "int4", "nullable": False, "primary_key": True}],
    ),
    DriftDetected(
        project_id="p1",
        connector_id="pg",
        table_name="users",
        observed_event_id="6a1b7e1e-0000-4000-8000-000000000001",
        baseline_version=1,
        new_version=2,
        before_hash="a",
        after_hash="b",
        drifts=[
            {
                "drift_type": "type_change",
                "column_name": "id",
                "old_type": "INT",
                "new_type": "BIGINT",
                "change_class": "widening",
                "severity": "low",
                "confidence_score": 1.0,
                "suggested_mapping": {"auto_include": True, "transformation_logic": "CAST(id AS BIGINT)"},
            }
        ],
        strategy="auto_adapt",
        status="adapted",
    ),
    FeaturesWritten(
        project_id="p1",
        values=[{"feature_name": "user_txn_7d", "entity_id": "user_1", "value": 42, "timestamp": NOW}],
    ),
    PipelineRunMetrics(
        project_id="p1",
        pipeline_id="orders",
        run_id="r1",
        status="success",
        started_at=NOW,
        ended_at=NOW,
        duration_seconds=3.5,
        rows_read=10,
        rows_written=10,
    ),
    DocumentIngested(project_id="p1", connector_id="milvus", collection="docs", doc_id="d1", text="hello"),
    PipelinesGenerated(
        project_id="p1",
        instance_id="i1",
        pipeline_name="orders_incr",
        template_id="incremental_postgres",
        template_version="1.0.0",
        instance_version=2,
        reason="drift_adaptation",
    ),
    MaintenanceAlert(
        project_id="p1",
        pipeline_id="orders",
        alert_type="failure_risk",
        probability=0.9,
        threshold=0.7,
        severity="high",
        description="failure likely",
        episode_started_at=NOW,
    ),
    DeadLetter(
        project_id="p1",
        original_topic="schema.observed",
        original_value_b64="e30=",
        error_type="X",
        reason="r",
        attempts=1,
    ),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip_keeps_every_field(event: Event) -> None:
    restored = type(event).model_validate_json(event.model_dump_json())
    assert restored == event
    assert restored.event_id == event.event_id
    assert restored.schema_version == 1
    assert event.kafka_key()


def test_every_topic_has_a_contract_and_an_example() -> None:
    assert set(CONTRACTS) == {type(e).topic for e in EXAMPLES if not isinstance(e, DeadLetter)}
    assert Topic.dlq(Topic.SCHEMA_OBSERVED) == "schema.observed.dlq"


def test_unknown_fields_wrong_version_and_naive_times_are_rejected() -> None:
    good = EXAMPLES[0].model_dump(mode="json")
    with pytest.raises(ValidationError, match="extra"):
        SchemaObserved.model_validate({**good, "surprise": 1})
    with pytest.raises(ValidationError, match="schema_version"):
        SchemaObserved.model_validate({**good, "schema_version": 2})
    with pytest.raises(ValidationError, match="occurred_at"):
        SchemaObserved.model_validate({**good, "occurred_at": "2026-01-01T00:00:00"})


def test_schema_observed_refuses_duplicate_and_blank_columns() -> None:
    base = {"project_id": "p1", "connector_id": "c", "table_name": "t"}
    with pytest.raises(ValidationError, match="duplicate column name 'a'"):
        SchemaObserved(**base, columns=[{"name": "a", "type": "int"}, {"name": "a", "type": "text"}])
    assert SchemaObserved(**base, columns=[]).columns == []  # PostgreSQL allows a table without columns
    with pytest.raises(ValidationError, match="name"):
        SchemaObserved(**base, columns=[{"name": "  ", "type": "int"}])


def test_document_upsert_needs_content_and_project_ids_are_checked() -> None:
    with pytest.raises(ValidationError, match="needs `text` or `embedding`"):
        DocumentIngested(project_id="p1", connector_id="m", collection="c", doc_id="d")
    DocumentIngested(project_id="p1", connector_id="m", collection="c", doc_id="d", operation="delete")
    with pytest.raises(ValidationError, match="project_id"):
        DocumentIngested(project_id="../etc", connector_id="m", collection="c", doc_id="d", text="x")


def test_dead_letter_keeps_original_bytes() -> None:
    letter = DeadLetter(
        project_id="unknown",
        original_topic="t",
        original_value_b64="AAEC/w==",
        error_type="E",
        reason="r",
        attempts=0,
    )
    assert letter.original_value() == b"\x00\x01\x02\xff"


@pytest.mark.parametrize("number", [1.5, 1_700_000_000])
def test_timestamps_are_iso_8601_strings_as_the_published_schema_says(number: float) -> None:
    """Pydantic alone reads a number as Unix seconds; the JSON Schema says `format: date-time`."""
    event = {
        "project_id": "p",
        "connector_id": "c",
        "table_name": "t",
        "columns": [{"name": "id", "type": "int"}],
    }
    with pytest.raises(ValidationError, match="ISO 8601 string with a time zone, not a number"):
        SchemaObserved.model_validate_json(json.dumps({**event, "occurred_at": number}))
    parsed = SchemaObserved.model_validate_json(json.dumps({**event, "occurred_at": "2026-12-03T10:00:00Z"}))
    assert parsed.occurred_at == datetime(2026, 12, 3, 10, tzinfo=UTC)
    assert SchemaObserved.model_json_schema()["properties"]["occurred_at"]["format"] == "date-time"
