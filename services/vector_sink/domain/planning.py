"""Reconciliation plans: what to write and delete for a document, from its chunks and fingerprint. No I/O.

Re-ingestion is idempotent because everything that decides what is written is a pure function of
the document: its chunks, their ids (doc key + position + hash of text and metadata) and the
fingerprint that says whether anything changed at all. The reconciliation plan compares those with
the record of what the store holds for the document (`DocumentRecord`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from aietl.services.vector_sink.domain.chunking import ChunkingPolicy, chunk_text
from aietl.services.vector_sink.domain.ids import chunk_id, content_hash, sha256, vector_hash
from aietl.services.vector_sink.domain.model import (
    ENRICHED_FIELDS,
    RESERVED_FIELDS,
    Chunk,
    Document,
    FieldType,
    FilterError,
    MetadataValue,
    RejectedDocument,
    validate_field_name,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one document may cost: text, chunks (each is embedded and stored), metadata."""

    max_text_bytes: int = 2_000_000
    max_chunks: int = 4_096
    max_metadata_fields: int = 64
    max_metadata_chars: int = 8_192  # per string value
    batch_count: int = 512
    batch_bytes: int = 4_000_000


@dataclass(frozen=True)
class DocumentRecord:
    """What the store holds for one document, as recorded after the last successful write."""

    fingerprint: str
    chunk_ids: frozenset[str]
    pending_ids: frozenset[str] = frozenset()  # written by a run that did not finish: maybe in the store


@dataclass(frozen=True)
class DocumentPlan:
    doc_id: str
    fingerprint: str
    chunks: tuple[Chunk, ...]
    to_write: tuple[Chunk, ...]
    to_delete: frozenset[str]

    @property
    def chunk_ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.chunks)

    def cache_use(self, cached_hashes: Collection[str]) -> CacheUse:
        """How this run's written chunks got their vectors, given the text hashes found in the cache."""
        needing = [c for c in self.to_write if not c.embedding]
        return CacheUse(len(needing), sum(c.content_hash in cached_hashes for c in needing))


@dataclass(frozen=True)
class CacheUse:
    """Per chunk (not per distinct text): what the console's hit rate of a collection sums up."""

    lookups: int  # written chunks that needed a vector (the document brought none)
    hits: int  # of those, taken from the embedding cache instead of the model


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
}


class EmbeddingModel(Protocol):
    name: str
    dimension: int


def _check_chunk_count(text: str, policy: ChunkingPolicy, limits: Limits) -> None:
    """A chunk ends at a word boundary in its second half: at most ~2 chunks per `size` characters."""
    if len(text) * 2 // policy.size > limits.max_chunks:
        raise RejectedDocument(
            f"`text` would make more than {limits.max_chunks} chunks of {policy.size} characters"
        )


def validate_document(
    document: Document,
    dimension: int | None,
    limits: Limits,
    schema: dict[str, FieldType] | None = None,
    policy: ChunkingPolicy | None = None,
    model: EmbeddingModel | None = None,
) -> None:
    """Reject what can never be stored, or would cost more than `limits` allow (with `policy`, the
    chunks its text would make); raise `RejectedDocument` naming the field. `model` embeds texts
    sent without an `embedding`: its vectors must fit the collection too."""
    if document.operation == "delete":
        return
    if document.text is None and document.embedding is None:
        raise RejectedDocument("neither `text` nor `embedding` given")
    if document.text is not None and len(document.text.encode()) > limits.max_text_bytes:
        raise RejectedDocument(f"`text` exceeds {limits.max_text_bytes} bytes")
    if document.text is not None and document.embedding is None and policy is not None:
        _check_chunk_count(document.text, policy, limits)
    if len(document.metadata) > limits.max_metadata_fields:
        raise RejectedDocument(f"metadata has more than {limits.max_metadata_fields} fields")
    if document.text is not None and not document.text.strip() and document.embedding is None:
        raise RejectedDocument("`text` is empty")
    if document.embedding is not None and dimension is not None and len(document.embedding) != dimension:
        raise RejectedDocument(
            f"`embedding` has dimension {len(document.embedding)}, the collection has {dimension}"
        )
    if document.embedding is None and model is not None and dimension not in (None, model.dimension):
        raise RejectedDocument(
            f"`text` would be embedded by {model.name} into dimension {model.dimension}, the collection "
            f"has {dimension}: send `embedding`, or configure an embedding model of that dimension"
        )
    for name in document.metadata:
        if name in RESERVED_FIELDS or name in ENRICHED_FIELDS:
            raise RejectedDocument(f"metadata key {name!r} is reserved")
        try:
            validate_field_name(name)
        except FilterError as error:
            raise RejectedDocument(f"metadata: {error}") from None
        value, kind = document.metadata[name], (schema or {}).get(name)
        if isinstance(value, str) and len(value) > limits.max_metadata_chars:
            raise RejectedDocument(f"metadata.{name}: longer than {limits.max_metadata_chars} characters")
        wrong_bool = isinstance(value, bool) and kind in ("int", "float")
        if kind and value is not None and (wrong_bool or not isinstance(value, _PYTHON_TYPES[kind])):
            raise RejectedDocument(f"metadata.{name}: expected {kind}, got {type(value).__name__}")


def enriched_metadata(document: Document) -> dict[str, MetadataValue]:
    """The document-level metadata every chunk carries (chunk index and hash are added per chunk)."""
    return {
        **document.metadata,
        "doc_id": document.doc_id,
        "source": document.source,
        "author": document.author,
        "timestamp": document.created_at.isoformat() if document.created_at else None,
    }


def fingerprint(document: Document, policy: ChunkingPolicy, embedder: str) -> str:
    """Changes whenever anything that ends up in the store would change."""
    body = (
        document.text
        if document.embedding is None
        else vector_hash(document.embedding) + (document.text or "")
    )
    meta = json.dumps(enriched_metadata(document), sort_keys=True, default=str)
    return sha256("\x1f".join((body or "", meta, policy.key(), embedder)))


def make_chunks(document: Document, policy: ChunkingPolicy) -> tuple[Chunk, ...]:
    """A document with its own embedding is one chunk; text is split by the policy."""
    base = enriched_metadata(document)
    if document.embedding is not None:
        pieces = [document.text or ""]
        hashes = [vector_hash(document.embedding)]
    else:
        pieces = chunk_text(document.text or "", policy)
        hashes = [content_hash(piece) for piece in pieces]
    chunks = []
    for index, (piece, text_hash) in enumerate(zip(pieces, hashes, strict=True)):
        metadata = {**base, "chunk_index": index, "content_hash": text_hash}
        chunks.append(
            Chunk(
                id=chunk_id(document.doc_id, index, text_hash, metadata),
                doc_id=document.doc_id,
                index=index,
                text=piece,
                content_hash=text_hash,
                metadata=metadata,
                embedding=tuple(float(x) for x in document.embedding) if document.embedding else None,
            )
        )
    return tuple(chunks)


def plan_document(
    document: Document, record: DocumentRecord | None, policy: ChunkingPolicy, embedder: str
) -> DocumentPlan | None:
    """What to write and delete for one document; None when it is unchanged since the last run."""
    if document.operation == "delete":
        if record is None:
            return None
        return DocumentPlan(document.doc_id, "", (), (), frozenset(record.chunk_ids | record.pending_ids))
    print_ = fingerprint(document, policy, embedder)
    if record is not None and record.fingerprint == print_ and not record.pending_ids:
        return None
    chunks = make_chunks(document, policy)
    new_ids = frozenset(c.id for c in chunks)
    stored = record.chunk_ids if record else frozenset()
    maybe_stored = stored | (record.pending_ids if record else frozenset())
    return DocumentPlan(
        doc_id=document.doc_id,
        fingerprint=print_,
        chunks=chunks,
        to_write=tuple(c for c in chunks if c.id not in stored),
        to_delete=maybe_stored - new_ids,
    )


def batches(
    items: Iterable[T], max_count: int, max_bytes: int, size_of: Callable[[T], int]
) -> Iterator[list[T]]:
    """Group items so that no batch exceeds `max_count` items or `max_bytes` (one item always fits)."""
    batch: list[T] = []
    used = 0
    for item in items:
        size = size_of(item)
        if batch and (len(batch) >= max_count or used + size > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(item)
        used += size
    if batch:
        yield batch
