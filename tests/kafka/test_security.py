"""SASL/SCRAM-SHA-512 over TLS to Apache Kafka, from the settings every client of the platform reads:
the admin client (topics), the producer, the consumers and the lag reader all connect through the
cluster's SASL_SSL listener, whose certificate a CA made for this session signed. A wrong password,
an untrusted certificate and a plaintext client are refused, and the password is never logged."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka.errors import KafkaError

from aietl.shared.bus import ConsumerProgress, ServiceRouter, create_broker, ensure_topics, publish_event
from aietl.shared.events import Topic
from aietl.shared.settings import Settings
from tests.foundation.test_bus import Ping
from tests.kafka.cluster import SCRAM_USERNAME, KafkaCluster
from tests.support import eventually


def secure_settings(
    cluster: KafkaCluster, monkeypatch: pytest.MonkeyPatch, **overrides: str | None
) -> Settings:
    """Settings as a deployment gives them: environment variables only (None: left unset)."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": cluster.secure_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": SCRAM_USERNAME,
        "KAFKA_SASL_PASSWORD": cluster.scram_password,
        "KAFKA_SSL_CA_FILE": str(cluster.ca_file),
        "AIETL_KAFKA_REPLICATION_FACTOR": "3",
        "AIETL_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "AIETL_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        **overrides,
    }
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return Settings()


async def test_every_client_connects_with_scram_over_tls(
    kafka_cluster: KafkaCluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in (None, "aiokafka", "faststream"):
        caplog.set_level(logging.DEBUG, logger=name)
    settings = secure_settings(kafka_cluster, monkeypatch)
    assert settings.kafka_sasl_password is not None
    assert kafka_cluster.scram_password not in repr(settings)
    topic = f"test.secure.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic, Topic.dlq(topic)])  # the admin client

    group = f"test-{topic}"
    broker = create_broker(settings)
    router = ServiceRouter(broker, settings, group_id=group)
    received: list[Ping] = []

    @router.consumes(topic)
    async def on_ping(event: Ping) -> None:
        received.append(event)

    broker.include_router(router)
    await broker.start()  # producer and consumer
    progress = ConsumerProgress(broker, stall_seconds=60)  # the lag reader
    try:
        sent = [Ping(project_id="secure", n=n) for n in range(3)]
        for event in sent:
            await publish_event(broker, event, topic=topic)

        async def all_received() -> bool:
            return len(received) == len(sent)

        await eventually(all_received)
        await progress.sample()
        assert progress.stalled == {}
        assert broker._connection_kwargs["enable_idempotence"] is True
    finally:
        await broker.stop()
    assert received == sent

    written = caplog.text
    assert f"Authenticated as {SCRAM_USERNAME} via SCRAM-SHA-512" in written  # the clients' DEBUG logs
    assert kafka_cluster.scram_password not in written


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"KAFKA_SASL_PASSWORD": "not-the-password"}, "wrong password"),
        ({"KAFKA_SSL_CA_FILE": None}, "certificate from a CA the client does not trust"),
        ({"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "plaintext to the TLS listener"),
    ],
)
async def test_connections_that_should_fail_do(
    kafka_cluster: KafkaCluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, str | None],
    what: str,
) -> None:
    for name in (None, "aiokafka", "faststream"):
        caplog.set_level(logging.DEBUG, logger=name)
    settings = secure_settings(kafka_cluster, monkeypatch, **change)
    with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
        await asyncio.wait_for(ensure_topics(settings, [f"test.refused.{uuid.uuid4().hex[:8]}"]), 60)
    assert kafka_cluster.scram_password not in caplog.text, what


def test_incomplete_kafka_settings_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="someone")
    with pytest.raises(ValueError, match="is not a file"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_ca_file="/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="MIN_INSYNC_REPLICAS exceeds"):
        Settings(kafka_replication_factor=1, kafka_min_insync_replicas=2)
    assert Settings(kafka_replication_factor=3).resolved_kafka_min_insync_replicas == 2
    assert Settings().resolved_kafka_min_insync_replicas == 1
