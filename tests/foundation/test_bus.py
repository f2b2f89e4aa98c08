"""The bus on a real Kafka-protocol broker (tansu, and Apache Kafka in `make test`'s second pass):
handler chains, redelivery, dead letters, every compression codec, what cannot be decoded, empty
values, and partitions that stall."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
import uuid
from collections.abc import Sequence
from typing import ClassVar

import aiokafka.codec
import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.runtime import Runtime
from aietl.shared.bus import (
    ConsumerProgress,
    ConsumerStalled,
    ServiceRouter,
    create_broker,
    ensure_topics,
    publish_event,
)
from aietl.shared.db import Database, process_once
from aietl.shared.events import DeadLetter, Event, Topic
from aietl.shared.settings import Settings
from tests.support import eventually, read_topic

CODECS = ("gzip", "snappy", "lz4", "zstd")


class Ping(Event):
    topic: ClassVar[str] = "test.ping"
    n: int


class Pong(Event):
    topic: ClassVar[str] = "test.pong"
    doubled: int


class Note(Event):
    """Text long enough that every producer compresses it (librdkafka sends a batch uncompressed
    when compressing does not make it smaller)."""

    topic: ClassVar[str] = "test.note"
    text: str


def notes(project: str, count: int) -> list[Note]:
    return [Note(project_id=project, text=f"note {n} " + "all work and no play " * 100) for n in range(count)]


def produce_compressed(servers: str, topic: str, values: Sequence[bytes], codec: str) -> None:
    """librdkafka (confluent-kafka) as a foreign producer: one compressed batch, on partition 0."""
    producer = Producer(
        {"bootstrap.servers": servers, "compression.type": codec, "linger.ms": 100, "acks": "all"}
    )
    for value in values:
        producer.produce(topic, value, key=b"one-key", partition=0)
    assert producer.flush(30) == 0, "undelivered messages"


async def consume_notes(settings: Settings, topic: str) -> tuple[KafkaBroker, list[Note]]:
    """A started broker whose consumer group `test-<topic>` collects the notes on `topic`."""
    broker = create_broker(settings)
    router = ServiceRouter(broker, settings, group_id=f"test-{topic}")
    received: list[Note] = []

    @router.consumes(topic)
    async def on_note(event: Note) -> None:
        received.append(event)

    broker.include_router(router)
    await broker.start()
    return broker, received


async def topics_for(settings: Settings, name: str) -> tuple[str, str]:
    topic = f"test.{name}.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic, Topic.dlq(topic)])
    return topic, Topic.dlq(topic)


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

        progress = ConsumerProgress(broker, stall_seconds=60)
        lag = asyncio.create_task(progress.run(every_seconds=0.05))
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
    return await _gauge("aietl_consumer_lag", topic, group)


async def _when(awaitable, condition):
    value = await awaitable
    return value if condition(value) else None


async def test_every_compression_codec_is_read(migrated: Settings) -> None:
    """Batches compressed by another client with gzip, snappy, lz4 or zstd are all handled."""
    topic, _ = await topics_for(migrated, "codecs")
    sent = {codec: notes(f"codec-{codec}", 5) for codec in CODECS}
    for codec, events in sent.items():
        produce_compressed(
            migrated.resolved_kafka_servers, topic, [e.model_dump_json().encode() for e in events], codec
        )
    broker, received = await consume_notes(migrated, topic)
    try:
        await eventually(lambda: _when(_value(received), lambda r: len(r) >= 20))
    finally:
        await broker.stop()
    assert [e.event_id for e in received] == [e.event_id for events in sent.values() for e in events]


async def test_batches_that_cannot_be_decoded_are_dead_lettered_and_the_partition_goes_on(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in an image without the codec library: each record of a zstd batch goes to the
    dead-letter topic with the reason and its offset, and the event after it is handled."""
    topic, dlq = await topics_for(migrated, "undecodable")
    servers = migrated.resolved_kafka_servers
    compressed = notes("undecodable", 3)
    produce_compressed(servers, topic, [e.model_dump_json().encode() for e in compressed], "zstd")
    after = Note(project_id="undecodable", text="plain")
    await _produce_plain(servers, topic, [after.model_dump_json().encode()])
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # snappy, lz4 and zstd now fail to decode

    broker, received = await consume_notes(migrated, topic)
    try:
        await eventually(lambda: _value(received))
        letters = sorted(
            (
                DeadLetter.model_validate_json(v)
                for v in await read_topic(servers, dlq, lambda v: True, count=3)
            ),
            key=lambda letter: letter.original_offset or 0,
        )
    finally:
        await broker.stop()
    assert received == [after]  # after the three records before it on its partition
    assert [letter.original_offset for letter in letters] == [0, 1, 2]
    for letter in letters:
        assert letter.error_type == "Undecodable" and letter.original_topic == topic
        assert "cannot be decoded" in letter.reason and "zstd" in letter.reason, letter.reason
        assert "offsets 0-2" in letter.reason and letter.consumer_group == f"test-{topic}"


async def test_empty_values_are_dead_lettered_by_single_and_batch_consumers(migrated: Settings) -> None:
    topic, dlq = await topics_for(migrated, "empty")
    servers = migrated.resolved_kafka_servers
    good = Ping(project_id="p1", n=7)
    await _produce_plain(servers, topic, [b"", None, good.model_dump_json().encode()])
    broker = create_broker(migrated)
    single = ServiceRouter(broker, migrated, group_id=f"single-{topic}")
    handled: list[Ping] = []
    batched: list[Ping] = []

    @single.consumes(topic)
    async def on_ping(event: Ping) -> None:
        handled.append(event)

    async def batch(events: Sequence[Ping]) -> list[Event]:
        batched.extend(events)
        return []

    async def one(event: Ping) -> list[Event]:
        return await batch([event])

    batches = ServiceRouter(broker, migrated, f"batch-{topic}")
    batches.consumes_batches(
        topic, parse=Ping.model_validate_json, batch=batch, one=one, max_records=10, wait_ms=20
    )
    broker.include_router(single)
    broker.include_router(batches)
    await broker.start()
    try:
        await eventually(lambda: _value(handled and batched))
    finally:
        await broker.stop()
    assert handled == batched == [good]
    letters = [
        DeadLetter.model_validate_json(v) for v in await read_topic(servers, dlq, lambda v: True, count=4)
    ]
    by_group = {(letter.consumer_group, letter.original_offset): letter for letter in letters}
    assert set(by_group) == {
        (group, offset) for group in (f"single-{topic}", f"batch-{topic}") for offset in (0, 1)
    }
    for (_group, offset), letter in by_group.items():
        assert letter.error_type == "EmptyValue" and letter.original_value() == b""
        assert ("tombstone" if offset == 1 else "empty value") in letter.reason


async def test_a_partition_that_makes_no_progress_is_reported_stalled(
    migrated: Settings, runtime: Runtime
) -> None:
    """A handler that hangs while events wait: readiness fails and `aietl_consumer_stalled` is 1,
    until the partition moves again."""
    assert "consumers" in runtime.readiness  # the check /ready runs in every consuming process
    topic, _ = await topics_for(migrated, "stall")
    group = f"test-{topic}"
    broker = create_broker(migrated)
    router = ServiceRouter(broker, migrated, group_id=group)
    release = asyncio.Event()
    seen: list[int] = []

    @router.consumes(topic)
    async def on_ping(event: Ping) -> None:
        seen.append(event.n)
        await release.wait()

    broker.include_router(router)
    await broker.start()
    progress = ConsumerProgress(broker, stall_seconds=1.0)
    sampling = asyncio.create_task(progress.run(every_seconds=0.05))
    try:
        await _produce_plain(
            migrated.resolved_kafka_servers,
            topic,
            [Ping(project_id="p1", n=n).model_dump_json().encode() for n in range(3)],
        )
        await eventually(lambda: _value(progress.stalled))
        with pytest.raises(ConsumerStalled, match=topic):
            await progress.check()
        assert 1.0 in (await _gauge("aietl_consumer_stalled", topic, group) or {}).values()
        release.set()
        await eventually(lambda: _value(len(seen) == 3 and not progress.stalled))
        await progress.check()
        assert set((await _gauge("aietl_consumer_stalled", topic, group) or {}).values()) == {0.0}
    finally:
        release.set()
        sampling.cancel()
        await broker.stop()


async def _produce_plain(servers: str, topic: str, values: Sequence[bytes | None]) -> None:
    """Uncompressed, in order on partition 0."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"one-key", partition=0)
    finally:
        await producer.stop()


async def _value(value):
    return value


async def _gauge(name: str, topic: str, group: str) -> dict[str, float] | None:
    values = {
        sample.labels["partition"]: sample.value
        for family in REGISTRY.collect()
        if family.name == name
        for sample in family.samples
        if sample.labels["topic"] == topic and sample.labels["group"] == group
    }
    return values or None


ABANDONED_MEMBER = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer

async def main():
    servers, topics = sys.argv[1], sys.argv[2:]
    consumers = [
        AIOKafkaConsumer(topic, bootstrap_servers=servers, group_id=f"test-{topic}", session_timeout_ms=6000)
        for topic in topics
    ]
    await asyncio.gather(*(consumer.start() for consumer in consumers))
    print("joined", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_subscribers_whose_groups_lost_a_member_start_together(migrated: Settings) -> None:
    """After a crash each group waits for the dead member's session to end (about 6 s) before it
    assigns partitions; the subscribers start at once, so a restart waits that long once, not once
    per subscriber."""
    topics = [(await topics_for(migrated, f"restart{index}"))[0] for index in range(4)]
    assert migrated.kafka_bootstrap_servers is not None
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ABANDONED_MEMBER,
        migrated.kafka_bootstrap_servers,
        *topics,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 60) == b"joined\n"
    child.kill()  # SIGKILL: its members never leave their groups
    await child.wait()
    broker = create_broker(migrated)
    for topic in topics:
        router = ServiceRouter(broker, migrated, group_id=f"test-{topic}")
        router.consumes(topic)(_ignore)
        broker.include_router(router)
    started = time.monotonic()
    try:
        await broker.start()
        elapsed = time.monotonic() - started
        assigned = {tp.topic for sub in broker.subscribers for tp in getattr(sub, "consumer").assignment()}
    finally:
        await broker.stop()
    assert assigned == set(topics)
    assert elapsed < 3 * migrated.kafka_session_timeout_ms / 1000, f"{elapsed:.1f}s: one group after another"


async def _ignore(event: Note) -> None:
    del event
