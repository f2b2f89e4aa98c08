"""Vector sink persistence: connector configs, the per-document chunk record, the embedding cache."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aietl.shared.db import Base
from aietl.shared.events.base import utc_now


class Connector(Base):
    """A project's vector store connection; secrets only in `sealed_secrets` (Fernet)."""

    __tablename__ = "vector_sink_connectors"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    store_type: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    secret_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    sealed_secrets: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class DocumentChunks(Base):
    """Which chunk ids the store holds for a document (and which a crashed run may have written)."""

    __tablename__ = "vector_sink_documents"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    connector_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection: Mapped[str] = mapped_column(String(255), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    chunk_ids: Mapped[list[str]] = mapped_column(JSON)
    pending_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    cache_lookups: Mapped[int] = mapped_column(default=0, server_default="0")
    """Chunks written at the document's last ingest that needed a vector (none of their own)."""
    cache_hits: Mapped[int] = mapped_column(default=0, server_default="0")
    """Of those, how many took it from the embedding cache instead of the model."""
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class CachedEmbedding(Base):
    """An embedding by (model, hash of the text): unchanged text is never embedded twice."""

    __tablename__ = "vector_sink_embedding_cache"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
