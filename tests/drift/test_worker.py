"""The worker over the real bus (tansu): observed -> detected, idempotent on redelivery, bad input -> DLQ."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from sqlalchemy import func, select

from aietl.services.drift import service, store
from aietl.services.drift import worker as drift_worker
from aietl.services.drift.tables import AuditRecord, Detection, SchemaVersion
from aietl.services.runtime import Runtime
from aietl.shared.bus import publish_event
from aietl.shared.events import SchemaObserved, Topic
from tests.support import eventually, read_topic


def _observed(table: str, columns: list[dict], **extra) -> SchemaObserved:
    return SchemaObserved(
        project_id="default",
        connector_id="mysql_shop",
        table_name=table,
        dialect="mysql",
        columns=columns,
        **extra,
    )


async def _versions(runtime: Runtime, table: str) -> list[int]:
    async with runtime.database.sessions() as session:
        return [v.version for v in await store.versions(session, "default", "mysql_shop", table)]


async def test_observed_to_detected_and_idempotent_on_redelivery(runtime: Runtime) -> None:
    table = f"orders_{uuid.uuid4().hex[:8]}"
    servers = runtime.settings.resolved_kafka_servers
    base: list[dict[str, Any]] = [
        {"name": "id", "type": "bigint", "nullable": False, "primary_key": True},
        {"name": "qty", "type": "int"},
    ]
    await publish_event(runtime.broker, _observed(table, base))
    await eventually(lambda: _versions(runtime, table))

    changed = _observed(
        table,
        [
            base[0],
            {"name": "quantity", "type": "bigint"},
            {"name": "sku", "type": "varchar(20)", "nullable": False},
        ],
    )
    await publish_event(runtime.broker, changed)
    marker = str(changed.event_id).encode()
    first = await read_topic(servers, Topic.DRIFT_DETECTED, lambda value: marker in value)
    detected = json.loads(first[0])
    assert detected["observed_event_id"] == str(changed.event_id)
    assert detected["status"] == "pending" and detected["strategy"] == "suggest"
    kinds = sorted((d["drift_type"], d["column_name"]) for d in detected["drifts"])
    assert kinds == [("new_column", "sku"), ("renamed_column", "quantity"), ("type_change", "quantity")]

    await publish_event(runtime.broker, changed)  # redelivery of the same event
    both = await read_topic(servers, Topic.DRIFT_DETECTED, lambda value: marker in value, count=2)
    assert {json.loads(value)["event_id"] for value in both} == {detected["event_id"]}
    async with runtime.database.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Detection).where(Detection.table_name == table)
        )
    assert count == 1
    assert await _versions(runtime, table) == [1]


def _original_contains(marker: str):
    """Dead letters carry the original bytes base64-encoded."""
    return lambda value: marker.encode() in base64.b64decode(json.loads(value)["original_value_b64"])


async def test_unusable_observations_go_to_the_dead_letter_topic(runtime: Runtime) -> None:
    servers = runtime.settings.resolved_kafka_servers
    dlq = Topic.dlq(Topic.SCHEMA_OBSERVED)
    table = f"dup_{uuid.uuid4().hex[:8]}"
    duplicate = _observed(table, [{"name": "id", "type": "int"}]).model_dump(mode="json")
    duplicate["columns"] *= 2  # bypasses the model's own check, as a foreign producer could
    await runtime.broker.publish(json.dumps(duplicate).encode(), Topic.SCHEMA_OBSERVED)
    letters = await read_topic(servers, dlq, _original_contains(duplicate["event_id"]))
    reason = json.loads(letters[0])["reason"]
    assert f"table mysql_shop/{table}: invalid event" in reason and "duplicate column name" in reason

    marker = uuid.uuid4().hex
    malformed = {"project_id": "default", "connector_id": marker, "columns": []}
    await runtime.broker.publish(json.dumps(malformed).encode(), Topic.SCHEMA_OBSERVED)
    letters = await read_topic(servers, dlq, _original_contains(marker))
    assert f"table {marker}/?: invalid event" in json.loads(letters[0])["reason"]


async def test_a_batch_is_processed_in_order_and_once(runtime: Runtime) -> None:
    """Several changes of one table in one batch build on each other; replaying the batch changes nothing."""
    table = f"batch_{uuid.uuid4().hex[:8]}"
    base = [{"name": "id", "type": "bigint", "nullable": False, "primary_key": True}]
    events = [
        _observed(table, base),
        _observed(table, [*base, {"name": "a", "type": "text"}]),
        _observed(table, [*base, {"name": "a", "type": "text"}, {"name": "b", "type": "text"}]),
    ]
    outputs = await drift_worker.process_batch(runtime, [*events, events[1]])
    assert [o.new_version for o in outputs] == [2, 3]
    assert await _versions(runtime, table) == [1, 2, 3]
    replayed = await drift_worker.process_batch(runtime, events)
    assert [o.event_id for o in replayed] == [o.event_id for o in outputs]
    assert await _versions(runtime, table) == [1, 2, 3]


async def _table_state(runtime: Runtime, connector: str, table: str) -> dict[str, list[tuple]]:
    """A table's versions, detections, audit trail and block, without ids and times."""
    key = (
        SchemaVersion.project_id == "default",
        SchemaVersion.connector_id == connector,
        SchemaVersion.table_name == table,
    )
    async with runtime.database.sessions() as session:
        versions = await session.execute(
            select(SchemaVersion.version, SchemaVersion.schema_hash)
            .where(*key)
            .order_by(SchemaVersion.version)
        )
        detections = await session.execute(
            select(
                Detection.baseline_version,
                Detection.new_version,
                Detection.before_hash,
                Detection.after_hash,
                Detection.strategy,
                Detection.status,
            )
            .where(Detection.connector_id == connector, Detection.table_name == table)
            .order_by(Detection.created_at)
        )
        audit = await session.execute(
            select(AuditRecord.action, AuditRecord.strategy, AuditRecord.before_hash, AuditRecord.after_hash)
            .where(AuditRecord.connector_id == connector, AuditRecord.table_name == table)
            .order_by(AuditRecord.id)
        )
        blocked = await store.block(session, "default", connector, table)
    return {
        "versions": list(versions.tuples()),
        "detections": list(detections.tuples()),
        "audit": list(audit.tuples()),
        "blocked": [(blocked is not None,)],
    }


def _sequence(connector: str, table: str) -> list[SchemaObserved]:
    """First sight and a change in one batch, the same change twice, a revert, a critical drop (fail),
    then another change of the now blocked table."""
    base = [
        {"name": "id", "type": "bigint", "nullable": False, "primary_key": True},
        {"name": "qty", "type": "int"},
    ]
    shapes = [
        base,
        [*base, {"name": "note", "type": "text", "nullable": False}],  # medium: suggest
        [*base, {"name": "note", "type": "text", "nullable": False}],
        base,
        [base[1]],  # the key column removed: critical, fail
        [*base, {"name": "extra", "type": "text"}],  # low, but the table is blocked
    ]
    return [
        SchemaObserved(project_id="default", connector_id=connector, table_name=table, columns=columns)
        for columns in shapes
    ]


async def test_a_batch_has_the_effect_of_its_events_one_by_one(runtime: Runtime) -> None:
    """Baselines, detections, reuse of an open detection, policy, blocking and the audit trail come out
    the same whether the observations arrive in one batch or one per transaction."""
    table = f"seq_{uuid.uuid4().hex[:8]}"
    async with runtime.database.transaction() as session:
        await service.set_policy(session, "default", "batched", table, {"medium": "suggest"}, "test")
        await service.set_policy(session, "default", "single", table, {"medium": "suggest"}, "test")
    batched = await drift_worker.process_batch(runtime, _sequence("batched", table))
    single = [await drift_worker.process_one(runtime, event) for event in _sequence("single", table)]

    def described(outputs) -> list[tuple]:
        return [(o.baseline_version, o.new_version, o.strategy, o.status) for o in outputs if o]

    assert described(batched) == described(single)
    blocked = (1, None, "fail", "blocked")
    assert described(batched) == [(1, None, "suggest", "pending"), blocked, blocked]
    state = await _table_state(runtime, "batched", table)
    assert state == await _table_state(runtime, "single", table)
    assert [action for action, *_ in state["audit"]] == ["policy_set", "baseline_created"] + ["detected"] * 3
    assert state["blocked"] == [(True,)] and len(state["versions"]) == 1
