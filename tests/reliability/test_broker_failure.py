"""Apache Kafka brokers failing under load: no event lost, none applied twice, the lag back to 0.

The drift worker consumes `schema.observed` (replication factor 3, `min.insync.replicas=2`) on the
three-broker cluster while its observations stream in (`acks=all`, idempotent). Mid-stream the
broker that leads a partition is killed with SIGKILL and brought back, or all three brokers are
restarted one after the other. Afterwards every observation has been handled once (one processed
marker each) and the drift state equals the same sequence applied once without a failure; the
group's committed offsets reach the end of every partition and every replica is in sync again.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from aietl.shared.events import Topic
from tests.kafka.cluster import KafkaCluster
from tests.reliability.conftest import Stack, scale
from tests.reliability.crash import GroupOffsets
from tests.reliability.test_crash_worker import drift_exactly_once
from tests.support import eventually

EVENTS = scale(10_000)
DOWN_SECONDS = 5.0  # how long the killed broker stays away (leadership moves meanwhile)

pytestmark = [
    pytest.mark.parametrize("stack_broker", ["kafka"], indirect=True),
    pytest.mark.timeout(900),
]


def cluster_of(stack: Stack) -> KafkaCluster:
    assert stack.broker.cluster is not None
    return stack.broker.cluster


async def test_the_partition_leader_killed_and_brought_back(stack: Stack) -> None:
    cluster = cluster_of(stack)
    killed: list[int] = []

    async def kill_the_leader() -> None:
        leader = await cluster.leader_of(Topic.SCHEMA_OBSERVED, 0)
        cluster.kill(leader)
        killed.append(leader)
        await asyncio.sleep(DOWN_SECONDS)
        await cluster.start()  # only the killed node starts again, with its data

    await drift_exactly_once(stack, disruptions=[kill_the_leader], events=EVENTS)
    assert len(killed) == 1
    await settled(stack)


async def test_a_rolling_restart_of_every_broker(stack: Stack) -> None:
    cluster = cluster_of(stack)
    restarted: list[int] = []

    async def rolling_restart() -> None:
        for node in range(1, cluster.brokers + 1):
            await asyncio.to_thread(cluster.stop, node)
            await cluster.start()
            await eventually(lambda: cluster.in_sync(Topic.SCHEMA_OBSERVED), timeout=120, interval=0.5)
            restarted.append(node)

    await drift_exactly_once(stack, disruptions=[rolling_restart], events=EVENTS)
    assert restarted == [1, 2, 3]
    await settled(stack)


async def settled(stack: Stack) -> None:
    """Every replica back in sync, and the drift group's lag 0 on every partition."""
    cluster = cluster_of(stack)
    topic = Topic.SCHEMA_OBSERVED
    await eventually(lambda: cluster.in_sync(topic), timeout=120, interval=0.5)
    partitions = [TopicPartition(topic, p) for p in range(stack.settings.kafka_partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    async with GroupOffsets(cluster.bootstrap, "drift", topic, len(partitions)) as offsets:
        committed = await offsets.committed()
    lag = {tp.partition: end - committed.get(tp.partition, 0) for tp, end in ends.items()}
    assert lag == dict.fromkeys(lag, 0), lag
