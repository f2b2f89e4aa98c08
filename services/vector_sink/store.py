"""SQL repositories: connector configs, per-document chunk records, the embedding cache."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.vector_sink.domain import DocumentPlan, DocumentRecord
from services.vector_sink.tables import CachedEmbedding, Connector, DocumentChunks
from shared.events.base import utc_now

CACHE_LOOKUP_CHUNK = 500


# --- connectors ---


async def add_connector(
    session: AsyncSession,
    project_id: str,
    name: str,
    store_type: str,
    options: dict[str, Any],
    secret_names: list[str],
    sealed: str | None,
) -> Connector:
    row = Connector(
        id=str(uuid.uuid4()),
        project_id=project_id,
        name=name,
        store_type=store_type,
        options=options,
        secret_names=secret_names,
        sealed_secrets=sealed,
    )
    session.add(row)
    await session.flush()
    return row


async def get_connector(session: AsyncSession, project_id: str, connector_id: str) -> Connector | None:
    """By id or by name, only within the project (another project's connector does not exist)."""
    return await session.scalar(
        select(Connector).where(
            Connector.project_id == project_id,
            (Connector.id == connector_id) | (Connector.name == connector_id),
        )
    )


async def list_connectors(session: AsyncSession, project_id: str) -> list[Connector]:
    rows = await session.scalars(
        select(Connector).where(Connector.project_id == project_id).order_by(Connector.name)
    )
    return list(rows)


async def remove_connector(session: AsyncSession, row: Connector) -> None:
    await session.execute(
        delete(DocumentChunks).where(
            DocumentChunks.project_id == row.project_id, DocumentChunks.connector_id == row.id
        )
    )
    await session.delete(row)


def touch(row: Connector) -> None:
    row.updated_at = utc_now()


# --- document records ---


def _key(project_id: str, connector_id: str, collection: str) -> tuple[Any, ...]:
    return (
        DocumentChunks.project_id == project_id,
        DocumentChunks.connector_id == connector_id,
        DocumentChunks.collection == collection,
    )


async def document_records(
    session: AsyncSession, project_id: str, connector_id: str, collection: str, doc_ids: Iterable[str]
) -> dict[str, DocumentRecord]:
    rows = await session.scalars(
        select(DocumentChunks).where(
            *_key(project_id, connector_id, collection), DocumentChunks.doc_id.in_(list(doc_ids))
        )
    )
    return {
        row.doc_id: DocumentRecord(row.fingerprint, frozenset(row.chunk_ids), frozenset(row.pending_ids))
        for row in rows
    }


async def _row(
    session: AsyncSession, project_id: str, connector_id: str, collection: str, doc_id: str
) -> DocumentChunks | None:
    return await session.get(DocumentChunks, (project_id, connector_id, collection, doc_id))


async def mark_pending(
    session: AsyncSession, project_id: str, connector_id: str, collection: str, plans: list[DocumentPlan]
) -> None:
    """Before writing: remember the ids about to be written, so a crash cannot leave orphans."""
    for plan in plans:
        row = await _row(session, project_id, connector_id, collection, plan.doc_id)
        pending = sorted({c.id for c in plan.to_write})
        if row is None:
            session.add(
                DocumentChunks(
                    project_id=project_id,
                    connector_id=connector_id,
                    collection=collection,
                    doc_id=plan.doc_id,
                    fingerprint="",
                    chunk_ids=[],
                    pending_ids=pending,
                )
            )
        else:
            row.pending_ids = sorted(set(row.pending_ids) | set(pending))
            row.updated_at = utc_now()


async def commit_plans(
    session: AsyncSession, project_id: str, connector_id: str, collection: str, plans: list[DocumentPlan]
) -> None:
    """After writing and deleting: the record says exactly what the store holds."""
    for plan in plans:
        row = await _row(session, project_id, connector_id, collection, plan.doc_id)
        if not plan.chunks:
            if row is not None:
                await session.delete(row)
            continue
        if row is None:
            row = DocumentChunks(
                project_id=project_id, connector_id=connector_id, collection=collection, doc_id=plan.doc_id
            )
            session.add(row)
        row.fingerprint = plan.fingerprint
        row.chunk_ids = sorted(plan.chunk_ids)
        row.pending_ids = []
        row.updated_at = utc_now()


# --- embedding cache ---


async def cached_embeddings(session: AsyncSession, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), CACHE_LOOKUP_CHUNK):
        part = unique[start : start + CACHE_LOOKUP_CHUNK]
        rows = await session.execute(
            select(CachedEmbedding.content_hash, CachedEmbedding.vector).where(
                tuple_(CachedEmbedding.model, CachedEmbedding.content_hash).in_([(model, h) for h in part])
            )
        )
        for content_hash, blob in rows:
            found[content_hash] = np.frombuffer(blob, dtype="<f4")
    return found


async def cache_embeddings(session: AsyncSession, model: str, vectors: dict[str, np.ndarray]) -> None:
    if not vectors:
        return
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    now = utc_now()
    values = [
        {"model": model, "content_hash": h, "vector": np.asarray(v, dtype="<f4").tobytes(), "created_at": now}
        for h, v in vectors.items()
    ]
    for start in range(0, len(values), CACHE_LOOKUP_CHUNK):
        statement = insert(CachedEmbedding).values(values[start : start + CACHE_LOOKUP_CHUNK])
        await session.execute(statement.on_conflict_do_nothing())
