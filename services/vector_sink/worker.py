"""vector_sink worker: consumes `documents.ingested` and keeps the vector store in line with it.

It consumes in batches (`aietl.shared.bus.BatchConsumer`): the documents of a batch that go to the same
collection are ingested as one run (one embedding call, bulk bookkeeping, one flush). Ingestion is
idempotent by construction (the document's chunk record decides what is rewritten), so when a
batch fails, or holds a document the collection refuses, its events are applied again one by one
and only the bad ones are dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence

from aietl.services.runtime import Runtime
from aietl.services.vector_sink.domain.model import Document
from aietl.services.vector_sink.service import ConnectorMisconfigured, UnknownConnector, service_of
from aietl.shared.bus import PermanentError, ServiceRouter
from aietl.shared.events import Event, Topic
from aietl.shared.events.documents import DocumentIngested

GROUP = "vector_sink"
MAX_BATCH = 200
BATCH_WAIT_MS = 20


def to_document(event: DocumentIngested) -> Document:
    return Document(
        doc_id=event.doc_id,
        text=event.text,
        embedding=event.embedding,
        metadata=dict(event.metadata),
        source=event.source,
        author=event.author,
        created_at=event.created_at,
        operation=event.operation,
    )


def create_router(runtime: Runtime) -> ServiceRouter:
    service = service_of(runtime)

    async def batch(events: Sequence[DocumentIngested]) -> list[Event]:
        runs: dict[tuple[str, str, str], list[Document]] = {}
        for event in events:  # in offset order: a later version of a document wins
            key = (event.project_id, event.connector_id, event.collection)
            runs.setdefault(key, []).append(to_document(event))
        for (project_id, connector_id, collection), documents in runs.items():
            try:
                report = await service.ingest(project_id, connector_id, collection, documents)
            except (UnknownConnector, ConnectorMisconfigured) as error:
                raise PermanentError(str(error)) from None
            if report.rejected:
                raise PermanentError(report.rejected[0].reason)
        return []

    async def one(event: DocumentIngested) -> list[Event]:
        return await batch([event])

    router = ServiceRouter(runtime.broker, runtime.settings, GROUP)
    router.consumes_batches(
        Topic.DOCUMENTS_INGESTED,
        parse=DocumentIngested.model_validate_json,
        batch=batch,
        one=one,
        max_records=MAX_BATCH,
        wait_ms=BATCH_WAIT_MS,
    )
    return router
