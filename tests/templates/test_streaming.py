"""Streaming into PostgreSQL: the platform consumes a real topic (tansu) and upserts by key."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from aietl.services.runtime import Runtime
from aietl.services.templates.service import service_of
from aietl.services.templates.streaming import decode
from aietl.shared.bus import ensure_topics
from aietl.shared.settings import Settings

BASE = "/api/v1/advanced/templates"


def test_decode_keeps_objects_and_counts_the_rest() -> None:
    batch = decode([b'{"id": 1}', b"not json", b"[1, 2]", None, b'{"id": 2}'], {"0": 5})
    assert json.loads(batch.payload) == [{"id": 1}, {"id": 2}]
    assert (batch.messages, batch.malformed) == (5, 3)


async def produce(servers: str, topic: str, messages: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=False)
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(topic, message, partition=0)
    finally:
        await producer.stop()


async def test_topic_into_postgres_upserts_latest_per_key(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, project_user: tuple[str, dict[str, str]]
) -> None:
    project, headers = project_user
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    schema = f"st_{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic])
    warehouse: Any = await service_of(runtime).connections.target("", "warehouse")
    async with warehouse.engine.begin() as connection:
        await connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    config = {
        "target": {"schema": schema, "name": "orders"},
        "columns": [
            {"name": "id", "type": "BIGINT"},
            {"name": "amount", "source": "amt", "type": "NUMERIC(10, 2)"},
            {"name": "status", "type": "TEXT"},
        ],
        "keys": ["id"],
        "topic": topic,
        "brokers": [settings.resolved_kafka_servers],
    }
    created = await client.post(
        f"{BASE}/instantiate",
        json={
            "template_id": "streaming_postgres",
            "project_id": project,
            "pipeline_name": topic,
            "config": config,
            "connection": "warehouse",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    instance_id = created.json()["instance_id"]
    await produce(
        settings.resolved_kafka_servers,
        topic,
        [
            json.dumps({"id": 1, "amt": 10, "status": "new"}).encode(),
            json.dumps({"id": 2, "amt": 20, "status": "new"}).encode(),
            b"not json",
            json.dumps({"id": 1, "amt": 11, "status": "paid"}).encode(),
            json.dumps({"amt": 5}).encode(),  # no key: skipped
        ],
    )
    first = (await client.post(f"{BASE}/instances/{instance_id}/run", headers=headers)).json()
    assert first["status"] == "success", first
    assert (first["rows_read"], first["rows_written"], first["error_count"]) == (5, 2, 1)

    idle = (await client.post(f"{BASE}/instances/{instance_id}/run", headers=headers)).json()
    assert (idle["rows_read"], idle["rows_written"]) == (0, 0)  # offsets were stored

    await produce(
        settings.resolved_kafka_servers,
        topic,
        [
            json.dumps({"id": 2, "amt": 20, "status": "new"}).encode(),
            json.dumps({"id": 3, "amt": 1}).encode(),
        ],
    )
    second = (await client.post(f"{BASE}/instances/{instance_id}/run", headers=headers)).json()
    assert (second["rows_read"], second["rows_written"]) == (2, 1)  # id 2 unchanged, id 3 new
    async with warehouse.engine.connect() as connection:
        rows = (
            await connection.exec_driver_sql(f"SELECT id, amount, status FROM {schema}.orders ORDER BY id")
        ).all()
    assert [tuple(row) for row in rows] == [(1, 11, "paid"), (2, 20, "new"), (3, 1, None)]
