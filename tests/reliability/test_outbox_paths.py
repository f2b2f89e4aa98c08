"""Every REST path that changes state and announces it writes the event into the outbox in the same
transaction: a refused request leaves no event behind, an accepted one leaves exactly one row, which
the relay publishes (the relay itself, with SIGKILL and a broker away, is `test_outbox.py`)."""

from __future__ import annotations

import json
import uuid

import httpx
from sqlalchemy import select

from aietl.services.runtime import Runtime
from aietl.shared.events import Topic
from aietl.shared.outbox import OutboxRow
from tests.drift.test_api import API, COLUMNS, _body
from tests.support import eventually, read_topic


async def _rows(runtime: Runtime, topic: str, needle: str) -> list[OutboxRow]:
    async with runtime.database.sessions() as session:
        rows = (await session.scalars(select(OutboxRow).where(OutboxRow.topic == topic))).all()
    return [row for row in rows if needle in row.value]


async def _published_once(runtime: Runtime, topic: str, needle: str, count: int) -> list[OutboxRow]:
    """The outbox holds `count` rows naming `needle`; each is marked sent and is on the topic."""
    rows = await _rows(runtime, topic, needle)
    assert len(rows) == count, [row.value[:200] for row in rows]

    async def sent() -> bool:
        return all(row.sent_at is not None for row in await _rows(runtime, topic, needle))

    await eventually(sent, timeout=30)
    ids = {row.event_id for row in rows}
    values = await read_topic(
        runtime.settings.resolved_kafka_servers,
        topic,
        lambda value: json.loads(value).get("event_id") in ids,
        count=count,
    )
    assert {json.loads(value)["event_id"] for value in values} == ids
    return rows


async def test_drift_detect_and_adapt_enqueue_with_their_decision(
    client: httpx.AsyncClient, project_user, runtime: Runtime
) -> None:
    _, headers = project_user
    table = f"outbox_{uuid.uuid4().hex[:8]}"
    assert (
        await client.post(f"{API}/detect", json=_body(table, COLUMNS), headers=headers)
    ).status_code == 200
    assert await _rows(runtime, Topic.DRIFT_DETECTED, table) == []  # a baseline is no drift
    dropped_key = [*COLUMNS[1:], {"name": "added", "type": "int"}]
    blocked = (await client.post(f"{API}/detect", json=_body(table, dropped_key), headers=headers)).json()
    assert blocked["status"] == "blocked"
    [detected] = await _published_once(runtime, Topic.DRIFT_DETECTED, table, 1)
    assert detected.event_id == blocked["detection_id"]

    refused = await client.post(
        f"{API}/detections/{blocked['detection_id']}/adapt", json={"drift_indexes": [99]}, headers=headers
    )
    assert refused.status_code == 422
    assert len(await _rows(runtime, Topic.DRIFT_DETECTED, table)) == 1  # rolled back with the request

    adapted = await client.post(f"{API}/detections/{blocked['detection_id']}/adapt", json={}, headers=headers)
    assert adapted.status_code == 200, adapted.text
    rows = await _published_once(runtime, Topic.DRIFT_DETECTED, table, 2)
    assert any('"status":"adapted"' in row.value for row in rows)
    again = await client.post(f"{API}/detections/{blocked['detection_id']}/adapt", json={}, headers=headers)
    assert again.status_code == 409
    assert len(await _rows(runtime, Topic.DRIFT_DETECTED, table)) == 2
