"""The vector sink's use cases, shared by the worker and the REST routes of one process.

Ingestion order makes re-runs safe: (1) record the ids about to be written as pending, (2) write
the new chunks, (3) delete the stale ones, (4) record exactly the new ids. A crash anywhere leaves
a record from which the next run deletes whatever may be left over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import structlog

from aietl.services.runtime import Runtime
from aietl.services.vector_sink import store
from aietl.services.vector_sink.config import CommonOptions, parse_options
from aietl.services.vector_sink.connectors import check_destinations, open_store
from aietl.services.vector_sink.connectors.base import VectorStore
from aietl.services.vector_sink.domain.chunking import ChunkingPolicy
from aietl.services.vector_sink.domain.filters import parse_filter
from aietl.services.vector_sink.domain.ids import scoped_collection
from aietl.services.vector_sink.domain.model import (
    Chunk,
    CollectionSpec,
    ConnectorConfigError,
    Document,
    Hit,
    RejectedDocument,
)
from aietl.services.vector_sink.domain.planning import (
    DocumentPlan,
    DocumentRecord,
    Limits,
    batches,
    plan_document,
    validate_document,
)
from aietl.services.vector_sink.embeddings import Embedder, EmbeddingConfig, create_embedder
from aietl.services.vector_sink.tables import Connector
from aietl.shared import metrics
from aietl.shared.outbound import OutboundPolicy, OutboundRefused, PathRefused, Unresolved
from aietl.shared.secret_box import SecretBox

log = structlog.get_logger(__name__)
T = TypeVar("T")
DELETE_BATCH = 1_000


class UnknownConnector(LookupError):
    pass


class ConnectorMisconfigured(ValueError):
    """The connector's store or model does not fit the collection (e.g. dimensions differ)."""


def _plan_documents(
    accepted: dict[str, Document],
    records: dict[str, DocumentRecord],
    policy: ChunkingPolicy,
    model: str,
) -> tuple[list[DocumentPlan], int]:
    """The plans of the documents that changed, and how many upserts changed nothing."""
    plans: list[DocumentPlan] = []
    unchanged = 0
    for document in accepted.values():
        plan = plan_document(document, records.get(document.doc_id), policy, model)
        if plan is None:
            unchanged += document.operation == "upsert"
        else:
            plans.append(plan)
    return plans, unchanged


def failure_reason(error: BaseException) -> str:
    """What a failed connection may tell the user: our own message about the configuration, else
    only the kind of failure. Never the remote side's words: a user must not be able to read a
    server's answer (an internal page, a metadata document) through an error message."""
    if isinstance(error, ConnectorMisconfigured | OutboundRefused | PathRefused | ConnectorConfigError):
        return str(error)
    if isinstance(error, TimeoutError):
        return "the store did not answer in time"
    if isinstance(error, ConnectionError | OSError):
        return "cannot connect to the store"
    return f"the store refused the request ({type(error).__name__})"


@dataclass(frozen=True)
class Rejection:
    doc_id: str
    reason: str


@dataclass
class IngestReport:
    changed_documents: int = 0
    unchanged_documents: int = 0
    deleted_documents: int = 0
    written_chunks: int = 0
    deleted_chunks: int = 0
    embedded_texts: int = 0
    cache_hits: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass
class OpenConnector:
    row_id: str
    stamp: str
    options: CommonOptions
    store: VectorStore
    embedder: Embedder


class VectorSinkService:
    def __init__(self, runtime: Runtime, limits: Limits | None = None) -> None:
        self.runtime = runtime
        self.limits = limits or Limits()
        self.secret_box = SecretBox(runtime.settings)
        self.outbound = OutboundPolicy.from_settings(runtime.settings)
        self._open: dict[str, OpenConnector] = {}
        self._ensured: dict[tuple[str, str], CollectionSpec] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    @staticmethod
    async def _run(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Store clients and the model are blocking: keep them off the event loop."""
        return await asyncio.to_thread(call, *args, **kwargs)

    # --- connectors ---

    async def connector(self, project_id: str, connector_id: str) -> OpenConnector:
        async with self.runtime.database.sessions() as session:
            row = await store.get_connector(session, project_id, connector_id)
        if row is None:
            raise UnknownConnector(f"connector {connector_id!r} not found")
        return await self.open(row)

    async def open(self, row: Connector) -> OpenConnector:
        """The connector's store, opened once and reopened only when its configuration changes."""
        async with self._lock(("open", row.id)):  # concurrent first uses share one client
            return await self._open_locked(row)

    async def _open_locked(self, row: Connector) -> OpenConnector:
        stamp = row.updated_at.isoformat()
        current = self._open.get(row.id)
        if current is not None and current.stamp == stamp:
            return current
        if current is not None:
            await self._run(current.store.close)
        options = parse_options(row.store_type, row.options)
        secrets = self.secret_box.open(row.sealed_secrets)
        try:
            embedder = await self._run(
                create_embedder, options.embedding(), secrets.get("embedding_api_key"), self.outbound
            )
            opened = await self._run(
                open_store, options, secrets, self.runtime.settings, embedder, self.outbound
            )
        except (ConnectorConfigError, OutboundRefused, PathRefused, FileNotFoundError) as error:
            raise ConnectorMisconfigured(str(error)) from None  # our own words about the configuration
        except ValueError as error:  # a client library's: it may quote what the server answered
            raise ConnectorMisconfigured(f"the store cannot be opened ({type(error).__name__})") from None
        self._open[row.id] = OpenConnector(row.id, stamp, options, opened, embedder)
        return self._open[row.id]

    async def forget(self, connector_id: str) -> None:
        current = self._open.pop(connector_id, None)
        if current is not None:
            await self._run(current.store.close)

    async def check_destinations(self, options: CommonOptions) -> None:
        """Refuse (OutboundRefused, PathRefused) a configuration whose addresses may not be reached.

        An allowed name that does not resolve yet is kept (a store being set up, DNS not yet there):
        every connection is checked again, with its addresses, when it is made."""
        with contextlib.suppress(Unresolved):
            await self._run(check_destinations, options, self.runtime.settings, self.outbound)

    async def test_connection(self, row: Connector) -> float:
        """Seconds to open the connector and ping its store; raises what went wrong (see `failure_reason`)."""
        started = time.perf_counter()
        connector = await self.open(row)
        await self._run(connector.store.ping)
        return time.perf_counter() - started

    async def ready(self) -> None:
        """Readiness: the default local model loads (connectors are checked by test-connection)."""
        await self._run(create_embedder, EmbeddingConfig())

    async def close(self) -> None:
        for connector_id in list(self._open):
            await self.forget(connector_id)

    async def _collection(self, connector: OpenConnector, project_id: str, collection: str) -> CollectionSpec:
        """Create the project's collection on first use; its existing dimension must fit the model."""
        name = scoped_collection(project_id, collection)
        key = (connector.stamp + connector.row_id, name)
        async with self._lock(key):
            if key not in self._ensured:
                options = connector.options
                dimension = options.dimension or connector.embedder.dimension
                wanted = CollectionSpec(name, dimension, options.metric, options.metadata_schema)
                try:
                    spec = await self._run(connector.store.ensure_collection, wanted)
                except (ValueError, LookupError) as error:  # e.g. a foreign collection, a missing index
                    raise ConnectorMisconfigured(str(error)) from None
                if spec.dimension != wanted.dimension:
                    raise ConnectorMisconfigured(
                        f"collection {collection!r} has dimension {spec.dimension}, "
                        f"the connector wants {wanted.dimension}"
                    )
                self._ensured[key] = spec
        return self._ensured[key]

    # --- ingestion ---

    async def ingest(
        self, project_id: str, connector_id: str, collection: str, documents: Sequence[Document]
    ) -> IngestReport:
        """Bring the store in line with these documents; bad ones are rejected, the rest proceed."""
        connector = await self.connector(project_id, connector_id)
        spec = await self._collection(connector, project_id, collection)
        async with self._lock((connector.row_id, spec.name)):  # one run at a time per collection
            return await self._ingest(project_id, connector, spec, collection, documents)

    async def _ingest(
        self,
        project_id: str,
        connector: OpenConnector,
        spec: CollectionSpec,
        collection: str,
        documents: Sequence[Document],
    ) -> IngestReport:
        report = IngestReport()
        policy, model = connector.options.chunking(), connector.embedder.name
        accepted: dict[str, Document] = {}
        for document in documents:
            try:
                validate_document(
                    document, spec.dimension, self.limits, spec.metadata_schema, policy, connector.embedder
                )
            except RejectedDocument as error:
                report.rejected.append(Rejection(document.doc_id, str(error)))
                continue
            accepted[document.doc_id] = document  # the last version of a doc in one batch wins
        database = self.runtime.database
        key = (project_id, connector.row_id, collection)
        async with database.transaction() as session:
            records = await store.document_records(session, *key, accepted)
        # Chunking and hashing megabytes of text is CPU work: off the event loop.
        plans, unchanged = await asyncio.to_thread(_plan_documents, accepted, records, policy, model)
        report.unchanged_documents += unchanged
        if not plans:
            return report
        async with database.transaction() as session:
            await store.mark_pending(session, *key, plans)
        to_write = [chunk for plan in plans for chunk in plan.to_write]
        vectors, cached_hashes = await self._embeddings(connector.embedder, to_write, report)
        for batch in batches(
            to_write,
            self.limits.batch_count,
            self.limits.batch_bytes,
            lambda c: len(c.text) + 4 * spec.dimension,
        ):
            frame = _frame(batch, vectors)
            await self._run(
                connector.store.write_data, data=frame, table_name=spec.name, mode="upsert", flush=False
            )
        stale = sorted({chunk_id for plan in plans for chunk_id in plan.to_delete})
        for start in range(0, len(stale), DELETE_BATCH):
            await self._run(connector.store.delete, spec.name, ids=stale[start : start + DELETE_BATCH])
        if to_write or stale:
            await self._run(connector.store.flush, spec.name)  # once per run, not per batch
        async with database.transaction() as session:
            await store.commit_plans(session, *key, plans, cached_hashes)
        report.written_chunks = len(to_write)
        report.deleted_chunks = len(stale)
        report.changed_documents = sum(1 for p in plans if p.chunks)
        report.deleted_documents = sum(1 for p in plans if not p.chunks)
        metrics.VECTOR_CHUNKS_WRITTEN.labels(store=connector.store.kind).inc(len(to_write))
        log.info(
            "documents ingested",
            project_id=project_id,
            collection=collection,
            changed=report.changed_documents,
            deleted=report.deleted_documents,
            written=report.written_chunks,
            stale_deleted=report.deleted_chunks,
        )
        return report

    async def _embeddings(
        self, embedder: Embedder, chunks: list[Chunk], report: IngestReport
    ) -> tuple[dict[str, np.ndarray], set[str]]:
        """Vectors by content hash: given by the document, from the cache, or computed (then cached);
        and the hashes that the cache answered."""
        vectors = {c.content_hash: np.asarray(c.embedding, np.float32) for c in chunks if c.embedding}
        wanted = {c.content_hash: c.text for c in chunks if c.content_hash not in vectors}
        if not wanted:
            return vectors, set()
        async with self.runtime.database.sessions() as session:
            cached = await store.cached_embeddings(session, embedder.name, list(wanted))
        vectors.update(cached)
        missing = [h for h in wanted if h not in cached]
        report.cache_hits += len(wanted) - len(missing)
        report.embedded_texts += len(missing)
        if missing:
            computed = await self._run(embedder.embed, [wanted[h] for h in missing])
            fresh = dict(zip(missing, computed, strict=True))
            vectors.update(fresh)
            async with self.runtime.database.transaction() as session:
                await store.cache_embeddings(session, embedder.name, fresh)
        return vectors, set(cached)

    # --- search ---

    async def search(
        self,
        project_id: str,
        connector_id: str,
        collection: str,
        *,
        query: str | None = None,
        vector: list[float] | None = None,
        top_k: int = 10,
        filter: dict[str, Any] | None = None,
        hybrid: bool = False,
    ) -> list[Hit]:
        parse_filter(filter)  # a bad or oversized filter is refused before any store is touched
        connector = await self.connector(project_id, connector_id)
        name = scoped_collection(project_id, collection)  # searching never creates a collection
        started = time.perf_counter()
        try:
            return await self._run(
                connector.store.query,
                name,
                vector=vector,
                text=query,
                top_k=top_k,
                filter=filter,
                hybrid=hybrid,
            )
        finally:
            metrics.VECTOR_QUERY_SECONDS.labels(store=connector.store.kind).observe(
                time.perf_counter() - started
            )

    async def stored_ids(self, project_id: str, connector_id: str, collection: str, doc_id: str) -> set[str]:
        """What the store holds for a document (evidence that nothing is stale)."""
        connector = await self.connector(project_id, connector_id)
        spec = await self._collection(connector, project_id, collection)
        return await self._run(connector.store.document_ids, spec.name, doc_id)


def _frame(chunks: list[Chunk], vectors: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = [{**chunk.metadata, "id": chunk.id, "text": chunk.text} for chunk in chunks]
    frame = pd.DataFrame(rows, dtype=object)  # keep ints as ints where a column has gaps
    frame["embedding"] = pd.Series(
        [vectors[chunk.content_hash] for chunk in chunks], index=frame.index, dtype=object
    )
    return frame


def service_of(runtime: Runtime) -> VectorSinkService:
    """The process-wide service, shared by the worker and the routes."""

    def create() -> VectorSinkService:
        service = VectorSinkService(runtime)
        runtime.on_shutdown(service.close)
        runtime.readiness["vector_sink_model"] = service.ready
        return service

    return runtime.component("vector_sink", create)
