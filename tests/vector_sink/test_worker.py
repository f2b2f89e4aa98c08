"""The worker consumes `documents.ingested`: good events land in Milvus Lite, bad ones in the DLQ."""

from __future__ import annotations

import uuid

from aietl.services.runtime import Runtime
from aietl.services.vector_sink import store
from aietl.services.vector_sink.config import MilvusOptions, split_secrets
from aietl.services.vector_sink.service import service_of
from aietl.shared.bus import publish_event
from aietl.shared.events import DeadLetter, DocumentIngested, Topic
from tests.support import eventually, read_topic


async def test_events_are_ingested_and_bad_ones_dead_lettered(runtime: Runtime) -> None:
    service = service_of(runtime)
    plain, _ = split_secrets(MilvusOptions())
    async with runtime.database.transaction() as session:
        row = await store.add_connector(
            session, "default", f"w-{uuid.uuid4().hex[:8]}", "milvus", plain, [], None
        )
    collection, doc = f"events-{uuid.uuid4().hex[:6]}", f"doc-{uuid.uuid4().hex[:6]}"
    event = DocumentIngested(
        project_id="default", connector_id=row.id, collection=collection, doc_id=doc, text="hello vectors"
    )
    await publish_event(runtime.broker, event)
    await publish_event(runtime.broker, event)  # redelivery: no second effect

    async def stored() -> set[str]:
        return await service.stored_ids("default", row.id, collection, doc)

    ids = await eventually(stored)
    assert len(ids) == 1

    bad_dimension = DocumentIngested(
        project_id="default", connector_id=row.id, collection=collection, doc_id="bad", embedding=[1.0, 2.0]
    )
    no_connector = DocumentIngested(
        project_id="default", connector_id="missing", collection=collection, doc_id="orphan", text="x"
    )
    await publish_event(runtime.broker, bad_dimension)
    await publish_event(runtime.broker, no_connector)
    wanted = {str(bad_dimension.event_id), str(no_connector.event_id)}

    def ours(value: bytes) -> bool:
        # Other tests dead-letter truncated or non-JSON bodies on the same topic.
        return any(
            event_id.encode() in DeadLetter.model_validate_json(value).original_value() for event_id in wanted
        )

    letters = [
        DeadLetter.model_validate_json(v)
        for v in await read_topic(
            runtime.settings.resolved_kafka_servers, Topic.dlq(Topic.DOCUMENTS_INGESTED), ours, count=2
        )
    ]
    reasons = sorted(letter.reason for letter in letters)
    assert "dimension 2" in reasons[0] and "not found" in reasons[1], reasons
    assert all(letter.error_type == "PermanentError" for letter in letters)
    assert await stored() == ids  # the bad events changed nothing
