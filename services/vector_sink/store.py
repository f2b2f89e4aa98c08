"""SQL repositories: connector configs, per-document chunk records, the embedding cache."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np
from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.vector_sink.domain.planning import DocumentPlan, DocumentRecord
from aietl.services.vector_sink.tables import CachedEmbedding, Connector, DocumentChunks
from aietl.shared.events.base import utc_now

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


RECORD_KEY = ("project_id", "connector_id", "collection", "doc_id")


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def _upsert_records(session: AsyncSession, values: list[dict[str, Any]], columns: list[str]) -> None:
    """One bulk INSERT .. ON CONFLICT DO UPDATE of `columns` (a round trip per document was the
    slowest part of bookkeeping)."""
    statement = _insert(session)(DocumentChunks)
    statement = statement.on_conflict_do_update(
        index_elements=list(RECORD_KEY), set_={name: statement.excluded[name] for name in columns}
    )
    await session.execute(statement, values)


async def mark_pending(
    session: AsyncSession, project_id: str, connector_id: str, collection: str, plans: list[DocumentPlan]
) -> None:
    """Before writing: remember the ids about to be written, so a crash cannot leave orphans."""
    if not plans:
        return
    rows = await session.execute(
        select(DocumentChunks.doc_id, DocumentChunks.pending_ids).where(
            *_key(project_id, connector_id, collection), DocumentChunks.doc_id.in_([p.doc_id for p in plans])
        )
    )
    earlier = {doc_id: set(pending) for doc_id, pending in rows}
    now = utc_now()
    values = [
        {
            "project_id": project_id,
            "connector_id": connector_id,
            "collection": collection,
            "doc_id": plan.doc_id,
            "fingerprint": "",  # a new record; an existing one keeps its fingerprint and chunk ids
            "chunk_ids": [],
            "pending_ids": sorted(earlier.get(plan.doc_id, set()) | {c.id for c in plan.to_write}),
            "updated_at": now,
        }
        for plan in plans
    ]
    await _upsert_records(session, values, ["pending_ids", "updated_at"])


async def commit_plans(
    session: AsyncSession,
    project_id: str,
    connector_id: str,
    collection: str,
    plans: list[DocumentPlan],
    cached_hashes: Collection[str],
) -> None:
    """After writing and deleting: the record says exactly what the store holds, and how many of
    the written chunks took their vector from the embedding cache (`cached_hashes`)."""
    gone = [plan.doc_id for plan in plans if not plan.chunks]
    if gone:
        await session.execute(
            delete(DocumentChunks).where(
                *_key(project_id, connector_id, collection), DocumentChunks.doc_id.in_(gone)
            )
        )
    now = utc_now()
    values: list[dict[str, Any]] = []
    for plan in plans:
        if not plan.chunks:
            continue
        use = plan.cache_use(cached_hashes)
        values.append(
            {
                "project_id": project_id,
                "connector_id": connector_id,
                "collection": collection,
                "doc_id": plan.doc_id,
                "fingerprint": plan.fingerprint,
                "chunk_ids": sorted(plan.chunk_ids),
                "pending_ids": [],
                "cache_lookups": use.lookups,
                "cache_hits": use.hits,
                "updated_at": now,
            }
        )
    if values:
        await _upsert_records(
            session,
            values,
            ["fingerprint", "chunk_ids", "pending_ids", "cache_lookups", "cache_hits", "updated_at"],
        )


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
    now = utc_now()
    values = [
        {"model": model, "content_hash": h, "vector": np.asarray(v, dtype="<f4").tobytes(), "created_at": now}
        for h, v in vectors.items()
    ]
    # executemany: SQLAlchemy sends it as batched multi-row INSERTs, without compiling one per chunk
    await session.execute(_insert(session)(CachedEmbedding).on_conflict_do_nothing(), values)
