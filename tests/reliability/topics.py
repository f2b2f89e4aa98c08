"""Read a whole topic as it stands now (up to each partition's end offset)."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def read_all(servers: str, topic: str, *, timeout: float = 60.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:  # the consumer has no metadata of this topic yet (Apache Kafka)
            admin = AIOKafkaAdminClient(bootstrap_servers=servers)
            await admin.start()
            try:
                [described] = await admin.describe_topics([topic])
            finally:
                await admin.close()
            partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, f"{topic} not read to its end within {timeout}s"
            batches = await consumer.getmany(*partitions, timeout_ms=200)
            for records in batches.values():
                values.extend(r.value for r in records if r.value is not None)
        return values
    finally:
        await consumer.stop()
