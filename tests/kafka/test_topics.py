"""Topics and producers on the three-broker Apache Kafka cluster as production runs them: replication
factor 3 with `min.insync.replicas=2`, partitions from settings, nothing created by the broker on its
own, `acks=all` with the idempotent producer (and tansu, which grants no producer id, still works)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

from aietl.shared.bus import create_broker, ensure_topics, idempotence_supported, publish_event
from aietl.shared.events import Topic
from aietl.shared.settings import Settings
from tests.foundation.test_bus import Ping
from tests.kafka.cluster import KafkaCluster
from tests.support import read_topic


def cluster_settings(cluster: KafkaCluster, **overrides: object) -> Settings:
    return Settings(
        kafka_bootstrap_servers=cluster.bootstrap,
        kafka_partitions=4,
        kafka_replication_factor=3,
        **overrides,  # type: ignore[arg-type]
    )


async def test_topics_are_replicated_three_times_with_two_in_sync(kafka_cluster: KafkaCluster) -> None:
    settings = cluster_settings(kafka_cluster)
    assert settings.resolved_kafka_min_insync_replicas == 2
    topic = f"test.replicated.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic, Topic.dlq(topic)])
    await ensure_topics(settings, [topic])  # existing topics are left alone, no error
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    partitions = described["partitions"]
    assert len(partitions) == 4
    assert all(sorted(p["replicas"]) == [1, 2, 3] for p in partitions)
    assert {p["leader"] for p in partitions} <= {1, 2, 3}
    values = {name: value for name, value, *_ in configs[0].resources[0][4]}
    assert values["min.insync.replicas"] == "2"


async def test_the_broker_creates_no_topic_on_its_own(kafka_cluster: KafkaCluster) -> None:
    """A typo in a topic name fails the producer instead of creating a one-replica topic."""
    topic = f"test.never-created.{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_cluster.bootstrap, request_timeout_ms=3_000)
    await producer.start()
    try:
        with pytest.raises((KafkaTimeoutError, UnknownTopicOrPartitionError)):
            await producer.send_and_wait(topic, b"{}")
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


async def test_producers_are_idempotent_on_kafka_and_not_on_tansu(
    kafka_cluster: KafkaCluster, kafka_servers: str
) -> None:
    settings = cluster_settings(kafka_cluster)
    assert await idempotence_supported(settings)
    tansu_or_session = Settings(kafka_bootstrap_servers=kafka_servers)
    if kafka_servers != kafka_cluster.bootstrap:  # the first pass: the session's broker is tansu
        assert not await idempotence_supported(tansu_or_session)

    topic = f"test.idempotent.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic])
    broker = create_broker(settings)
    await broker.connect()
    try:
        assert idempotent_producer(broker)
        assert broker._connection_kwargs["acks"] == "all"
        event = Ping(project_id="p1", n=1)
        await publish_event(broker, event, topic=topic)
    finally:
        await broker.stop()
    [value] = await read_topic(kafka_cluster.bootstrap, topic, lambda v: True)
    assert Ping.model_validate_json(value) == event

    forced = cluster_settings(kafka_cluster, kafka_idempotent_producer=False)
    broker = create_broker(forced)
    await broker.connect()
    try:
        assert not idempotent_producer(broker)
    finally:
        await broker.stop()


def idempotent_producer(broker) -> bool:
    """Whether the broker's aiokafka producer runs idempotent (it then keeps a transaction manager
    for its producer id and sequence numbers)."""
    producer = broker.config.broker_config.producer._producer.producer
    return producer._txn_manager is not None
