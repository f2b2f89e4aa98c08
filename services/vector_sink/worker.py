"""vector_sink worker: consumes `documents.ingested` and keeps the vector store in line with it."""

from __future__ import annotations

from services.runtime import Runtime
from services.vector_sink.domain import Document
from services.vector_sink.service import ConnectorMisconfigured, UnknownConnector, service_of
from shared.bus import PermanentError, ServiceRouter
from shared.events import Topic
from shared.events.documents import DocumentIngested

GROUP = "vector_sink"


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
    router = ServiceRouter(runtime.broker, runtime.settings, GROUP)
    service = service_of(runtime)

    @router.consumes(Topic.DOCUMENTS_INGESTED)
    async def on_document(event: DocumentIngested) -> None:
        """Idempotent by construction: the document's chunk record decides what is (re)written."""
        try:
            report = await service.ingest(
                event.project_id, event.connector_id, event.collection, [to_document(event)]
            )
        except (UnknownConnector, ConnectorMisconfigured) as error:
            raise PermanentError(str(error)) from None
        if report.rejected:
            raise PermanentError(report.rejected[0].reason)

    return router
