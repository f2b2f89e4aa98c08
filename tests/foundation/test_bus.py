"""The bus on a real Kafka-protocol broker (tansu): handler chains, redelivery, dead letters."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import ClassVar

from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus import ServiceRouter, create_broker, ensure_topics, publish_event, record_consumer_lag
from shared.db import Database, process_once
from shared.events import DeadLetter, Event, Topic
from shared.settings import Settings
from tests.support import eventually, read_topic


class Ping(Event):
    topic: ClassVar[str] = "test.ping"
    n: int


class Pong(Event):
    topic: ClassVar[str] = "test.pong"
    doubled: int


async def test_chain_redelivery_and_dead_letters(migrated: Settings) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic_in, topic_out = f"test.ping.{suffix}", f"test.pong.{suffix}"
    await ensure_topics(migrated, [topic_in, topic_out, Topic.dlq(topic_in)])
    database = Database(migrated.resolved_database_url)
    table = f"bus_effects_{suffix}"
    async with database.transaction() as session:
        await session.execute(text(f"CREATE TABLE {table} (event_id VARCHAR(36), n INTEGER)"))

    broker = create_broker(migrated)
    router = ServiceRouter(broker, migrated, group_id=f"test-{suffix}")
    attempts: list[int] = []

    @router.consumes(topic_in)
    async def on_ping(event: Ping) -> None:
        if event.n < 0:
            attempts.append(event.n)
            raise RuntimeError("negative numbers always fail")

        async def work(session: AsyncSession) -> Pong:
            await session.execute(
                text(f"INSERT INTO {table} VALUES (:e, :n)"), {"e": str(event.event_id), "n": event.n}
            )
            return Pong(project_id=event.project_id, doubled=event.n * 2)

        pong = await process_once(database, f"test-{suffix}", event.event_id, work, Pong)
        assert pong is not None
        await publish_event(broker, pong, topic=topic_out)

    broker.include_router(router)
    await broker.start()
    try:
        first = Ping(project_id="p1", n=21)
        await publish_event(broker, first, topic=topic_in)
        await publish_event(broker, first, topic=topic_in)  # redelivery of the same event
        await broker.publish(b"{not json", topic_in, key=b"k1")
        await broker.publish(json.dumps({"project_id": "p1", "n": "x"}).encode(), topic_in)
        await publish_event(broker, Ping(project_id="p1", n=-1), topic=topic_in)
        last = Ping(project_id="p1", n=5)
        await publish_event(broker, last, topic=topic_in)

        async def rows() -> list[tuple[str, int]]:
            async with database.sessions() as session:
                result = await session.execute(text(f"SELECT event_id, n FROM {table} ORDER BY n"))
                return [tuple(r) for r in result]

        effects = await eventually(lambda: _when(rows(), lambda r: len(r) >= 2))
        assert effects == [(str(last.event_id), 5), (str(first.event_id), 21)]

        pongs = [
            Pong.model_validate_json(v)
            for v in await read_topic(migrated.resolved_kafka_servers, topic_out, lambda v: True, count=3)
        ]
        doubled_of_first = [p for p in pongs if p.doubled == 42]
        assert len(doubled_of_first) == 2 and doubled_of_first[0].event_id == doubled_of_first[1].event_id

        letters = [
            DeadLetter.model_validate_json(v)
            for v in await read_topic(
                migrated.resolved_kafka_servers, Topic.dlq(topic_in), lambda v: True, count=3
            )
        ]
        by_value = {letter.original_value(): letter for letter in letters}
        assert by_value[b"{not json"].error_type == "ValidationError"
        assert by_value[b"{not json"].original_key == "k1"
        assert by_value[b"{not json"].project_id == "unknown"
        wrong_type = next(letter for raw, letter in by_value.items() if b'"x"' in raw)
        assert "n:" in wrong_type.reason and wrong_type.project_id == "p1"
        failing = next(letter for letter in letters if letter.error_type == "RuntimeError")
        assert failing.attempts == migrated.handler_max_attempts
        assert "negative numbers always fail" in failing.reason
        assert attempts == [-1] * migrated.handler_max_attempts
        assert base64.b64decode(failing.original_value_b64) == failing.original_value()
        assert await rows() == effects  # nothing else was written

        lag = asyncio.create_task(record_consumer_lag(broker, every_seconds=0.05))
        try:
            reported = await eventually(lambda: _lag_of(topic_in, f"test-{suffix}"))
        finally:
            lag.cancel()
        assert reported and all(value == 0 for value in reported.values()), reported  # all consumed
    finally:
        await broker.stop()
        async with database.transaction() as session:
            await session.execute(text(f"DROP TABLE {table}"))
        await database.dispose()


async def _lag_of(topic: str, group: str) -> dict[str, float] | None:
    """The consumer-lag gauge's value per partition, once it has one."""
    values = {
        sample.labels["partition"]: sample.value
        for family in REGISTRY.collect()
        if family.name == "aietl_consumer_lag"
        for sample in family.samples
        if sample.labels["topic"] == topic and sample.labels["group"] == group
    }
    return values or None


async def _when(awaitable, condition):
    value = await awaitable
    return value if condition(value) else None
