"""The consumer the platform runs for streaming pipelines on SQL targets: one bounded batch per run.

A run reads every partition of the topic from the pipeline's stored offsets up to the end offsets
it saw when it started (at most `max_messages`), hands the decoded JSON objects to the pipeline's
SQL as one array, and the new offsets are stored only after the target's transaction committed:
at-least-once, made idempotent by the keyed upsert (a replayed batch rewrites nothing). No
consumer group is joined, so a run costs no rebalance.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

METADATA_TIMEOUT_SECONDS = 10.0
POLL_MS = 1_000


@dataclass(frozen=True)
class MessageBatch:
    payload: str
    """JSON array of the messages that decoded to objects, in offset order per partition."""
    messages: int
    malformed: int
    next_offsets: dict[str, int] = field(default_factory=dict)
    """Partition (as text) -> offset to read next; store it once the batch is applied."""


def decode(values: list[bytes | None], next_offsets: dict[str, int] | None = None) -> MessageBatch:
    """Keep JSON objects; count everything else (not JSON, not an object) as malformed."""
    documents: list[dict[str, Any]] = []
    for value in values:
        try:
            document = json.loads(value) if value is not None else None
        except ValueError:
            document = None
        if isinstance(document, dict):
            documents.append(document)
    return MessageBatch(json.dumps(documents), len(values), len(values) - len(documents), next_offsets or {})


async def read_batch(config: dict[str, Any], offsets: dict[str, int]) -> MessageBatch:
    """Read the topic from `offsets` (partition -> next offset; earliest when absent) to its end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=",".join(config["brokers"]),
        client_id="aietl-templates-stream",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(config["topic"], p) for p in sorted(await _partitions(consumer, config))]
        if not partitions:
            return decode([])
        consumer.assign(partitions)
        for partition in partitions:
            stored = offsets.get(str(partition.partition))
            if stored is None:
                await consumer.seek_to_beginning(partition)
            else:
                consumer.seek(partition, stored)
        ends = await consumer.end_offsets(partitions)
        limit = int(config.get("max_messages", 10_000))
        values: list[bytes | None] = []
        positions = {partition: await consumer.position(partition) for partition in partitions}
        while len(values) < limit and any(positions[p] < ends[p] for p in partitions):
            records = await consumer.getmany(*partitions, timeout_ms=POLL_MS, max_records=limit - len(values))
            for partition, batch in records.items():
                wanted = [record for record in batch if record.offset < ends[partition]]
                values.extend(record.value for record in wanted)
                if wanted:
                    positions[partition] = wanted[-1].offset + 1
            if not records:
                break
        return decode(values, {str(p.partition): positions[p] for p in partitions})
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, config: dict[str, Any]) -> set[int]:
    deadline = time.monotonic() + METADATA_TIMEOUT_SECONDS
    while True:
        found = consumer.partitions_for_topic(config["topic"])
        if found or time.monotonic() > deadline:
            return set(found or ())
        await consumer.topics()  # refreshes the cluster metadata
