"""Read the newest records of topics, bounded: the last N per partition, within a byte budget and a
time limit, with a consumer of no group (it commits nothing and disturbs no worker)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from aietl.shared.settings import Settings

READ_SECONDS = 5.0
MAX_TOTAL_BYTES = 32 * 1_048_576


@dataclass(frozen=True, slots=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Tail:
    records: list[TopicRecord]
    complete: bool
    """False when the time limit or the byte budget cut the reading short."""


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.resolved_kafka_servers,
        client_id="aietl-ops",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )


async def read_tails(
    settings: Settings,
    topics: Sequence[str],
    per_partition: int,
    *,
    seconds: float = READ_SECONDS,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> Tail:
    """The last `per_partition` records of every partition of `topics` (oldest first per partition)."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        await consumer.topics()  # metadata of every topic, so that partitions are known
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return Tail([], True)
        consumer.assign(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp: ends[tp] for tp in partitions if ends[tp] > beginnings[tp]}
        for tp in partitions:
            if tp in pending:
                consumer.seek(tp, max(beginnings[tp], ends[tp] - per_partition))
        idle = [tp for tp in partitions if tp not in pending]
        if idle:
            consumer.pause(*idle)
        return await _drain(consumer, pending, seconds, max_total_bytes)
    finally:
        await consumer.stop()


async def read_one(settings: Settings, topic: str, partition: int, offset: int) -> TopicRecord | None:
    """The record at `offset`, or None when the partition does not hold it (any more)."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        await consumer.topics()
        if partition not in (consumer.partitions_for_topic(topic) or ()):
            return None
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        beginning = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if not beginning <= offset < end:
            return None
        consumer.seek(tp, offset)
        tail = await _drain(consumer, {tp: offset + 1}, READ_SECONDS, MAX_TOTAL_BYTES)
        return next((r for r in tail.records if r.offset == offset), None)
    finally:
        await consumer.stop()


async def _drain(
    consumer: AIOKafkaConsumer, pending: dict[TopicPartition, int], seconds: float, max_total_bytes: int
) -> Tail:
    """Fetch until every partition of `pending` reached its end offset, time or bytes run out."""
    records: list[TopicRecord] = []
    total = 0
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline and total <= max_total_bytes:
        batches = await consumer.getmany(*pending, timeout_ms=200, max_records=500)
        for tp, batch in batches.items():
            end = pending.get(tp)
            if end is None:
                continue
            for record in batch:
                if record.offset >= end:
                    break
                value = record.value or b""
                total += len(value)
                records.append(
                    TopicRecord(tp.topic, tp.partition, record.offset, record.timestamp, record.key, value)
                )
        for tp in list(pending):
            if await consumer.position(tp) >= pending[tp]:
                del pending[tp]
                consumer.pause(tp)
    return Tail(records, complete=not pending)
