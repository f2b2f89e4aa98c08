"""Push path over Kafka (tansu): `features.written` reaches the online and offline stores once;
an event naming an unknown feature goes to the dead-letter topic with the reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.features import registry
from services.features.component import feature_store
from services.features.domain import FeatureType
from services.runtime import Runtime
from shared.bus import publish_event
from shared.events import DeadLetter, FeaturesWritten, FeatureValue, Topic
from tests.support import eventually, read_topic


async def test_features_written_event_lands_online_and_offline(runtime: Runtime) -> None:
    project = f"kw{uuid.uuid4().hex[:8]}"
    async with runtime.database.transaction() as session:
        await registry.register_feature(
            session,
            project,
            registry.FeatureDefinition("txn_count", FeatureType.INT64, "user", ttl_seconds=3600),
        )
    store = feature_store(runtime)
    store.registry_changed()
    at = datetime.now(UTC) - timedelta(seconds=5)
    event = FeaturesWritten(
        project_id=project,
        values=[
            FeatureValue(feature_name="txn_count", entity_id=f"u{i}", value=i, timestamp=at) for i in range(3)
        ],
    )
    await publish_event(runtime.broker, event)
    await publish_event(runtime.broker, event)  # redelivery: no second effect

    async def online() -> list[object]:
        vectors = await store.get_online(project, ["txn_count"], ["u0", "u1", "u2"])
        values = [v["features"]["txn_count"] for v in vectors]
        return values if None not in values else []

    assert await eventually(online) == [0, 1, 2]
    history = await store.historical(project, ["txn_count"], [("u2", at), ("u2", at - timedelta(seconds=1))])
    assert history == [[2], [None]]


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
