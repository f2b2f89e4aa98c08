"""Push path over Kafka (tansu): `features.written` reaches the online and offline stores once;
an event naming an unknown feature goes to the dead-letter topic with the reason."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aietl.services.features import registry
from aietl.services.features.component import service_of
from aietl.services.features.domain import FeatureType
from aietl.services.runtime import Runtime, create_worker_router
from aietl.shared.bus import ensure_topics, publish_event
from aietl.shared.db import ProcessedEvent
from aietl.shared.embedded_broker import EmbeddedBroker
from aietl.shared.events import DeadLetter, FeaturesWritten, FeatureValue, Topic
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from tests.reliability.topics import read_all
from tests.support import eventually, read_topic


async def test_unknown_feature_goes_to_the_dead_letter_topic(runtime: Runtime) -> None:
    project = f"kd{uuid.uuid4().hex[:8]}"
    event = FeaturesWritten(
        project_id=project,
        values=[
            FeatureValue(feature_name="never_registered", entity_id="u", value=1, timestamp=datetime.now(UTC))
        ],
    )
    await publish_event(runtime.broker, event)
    [dead] = await read_topic(
        runtime.settings.resolved_kafka_servers,
        Topic.dlq(Topic.FEATURES_WRITTEN),
        lambda v: project.encode() in v,
    )
    letter = DeadLetter.model_validate_json(dead)
    assert "never_registered" in letter.reason
    assert str(event.event_id).encode() in letter.original_value()


@pytest.fixture(params=["postgresql", "sqlite"])
async def worker_runtime(
    request: pytest.FixtureRequest, tmp_path: Path, runtime: Runtime
) -> AsyncIterator[Runtime]:
    """The session runtime (PostgreSQL, every worker), or the features worker as `aietl up` runs it by
    default: SQLite under the data dir and a tansu of its own (its consumer group must not share the
    session runtime's events)."""
    if request.param == "postgresql":
        yield runtime
        return
    with EmbeddedBroker() as broker:
        settings = Settings(
            environment="test",
            data_dir=tmp_path,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            kafka_fetch_max_wait_ms=20,
            handler_retry_backoff_seconds=0.01,
        )
        await upgrade_async(settings.resolved_database_url)
        await ensure_topics(settings)
        embedded = Runtime(settings, client_id="aietl-embedded-test")
        embedded.broker.include_router(create_worker_router("features", embedded))
        await embedded.start_consuming()
        try:
            yield embedded
        finally:
            await embedded.broker.stop()
            await embedded.close()


async def test_features_written_event_lands_online_and_offline_once(worker_runtime: Runtime) -> None:
    """Published twice (a redelivery): the values are online and offline once, one processed marker,
    nothing dead-lettered. On SQLite the marker and the offline values share one transaction: a second
    connection would wait for the marker's write lock until the event was dead-lettered."""
    runtime = worker_runtime
    project = f"kw{uuid.uuid4().hex[:8]}"
    store = service_of(runtime)
    await store.register_feature(
        project, registry.FeatureDefinition("txn_count", FeatureType.INT64, "user", ttl_seconds=3600)
    )
    at = datetime.now(UTC) - timedelta(seconds=5)
    event = FeaturesWritten(
        project_id=project,
        values=[
            FeatureValue(feature_name="txn_count", entity_id=f"u{i}", value=i, timestamp=at) for i in range(3)
        ],
    )
    started = time.monotonic()
    await publish_event(runtime.broker, event)
    await publish_event(runtime.broker, event)  # redelivery: no second effect

    async def online() -> list[object]:
        vectors = await store.get_online(project, ["txn_count"], ["u0", "u1", "u2"])
        values = [v["features"]["txn_count"] for v in vectors]
        return values if None not in values else []

    assert await eventually(online, timeout=20) == [0, 1, 2]
    assert time.monotonic() - started < 10, "the handler waited for a lock"
    history = await store.historical(
        project, ["txn_count"], [("u2", at), ("u2", at - timedelta(seconds=1)), ("u0", at)]
    )
    assert history == [[2], [None], [0]]
    async with runtime.database.sessions() as session:
        markers = await session.scalar(
            select(func.count())
            .select_from(ProcessedEvent)
            .where(ProcessedEvent.event_id == str(event.event_id))
        )
    assert markers == 1
    dead = await read_all(runtime.settings.resolved_kafka_servers, Topic.dlq(Topic.FEATURES_WRITTEN))
    assert [value for value in dead if project.encode() in value] == []
