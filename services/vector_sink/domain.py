"""Vector sink domain: chunking, deterministic chunk ids, reconciliation plans, filters. No I/O.

Re-ingestion is idempotent because everything that decides what is written is a pure function of
the document: its chunks, their ids (doc key + position + hash of text and metadata) and the
fingerprint that says whether anything changed at all. The reconciliation plan compares those with
the record of what the store holds for the document (`DocumentRecord`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

Metric = Literal["cosine", "l2", "ip"]
WriteMode = Literal["append", "upsert", "overwrite"]
FieldType = Literal["str", "int", "float", "bool"]
MetadataValue = str | int | float | bool | None

RESERVED_FIELDS = frozenset({"id", "text", "embedding", "sparse"})
ENRICHED_FIELDS = ("doc_id", "chunk_index", "content_hash", "source", "author", "timestamp")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
T = TypeVar("T")


class RejectedDocument(ValueError):
    """A document that can never be stored as sent (bad dimension, too large, nothing to embed)."""


class FilterError(ValueError):
    """A metadata filter that is not valid; the message names the offending part."""


class ConnectorConfigError(ValueError):
    """A connector configuration that cannot work; the message is ours, never a remote server's."""


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection must look like: vector size, distance, and typed metadata fields to index."""

    name: str
    dimension: int
    metric: Metric = "cosine"
    metadata_schema: dict[str, FieldType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.dimension <= 8_192:
            raise ValueError(f"dimension must be within 1..8192, got {self.dimension}")
        for name in self.metadata_schema:
            validate_field_name(name)


@dataclass(frozen=True)
class ChunkingPolicy:
    """Chunks hold at most `size` characters of new text plus `overlap` characters of the previous one."""

    size: int = 1_000
    overlap: int = 150
    markdown: bool = True

    def __post_init__(self) -> None:
        if self.size < 16 or not 0 <= self.overlap < self.size:
            raise ValueError("chunking needs size >= 16 and 0 <= overlap < size")

    def key(self) -> str:
        return f"{self.size}/{self.overlap}/{int(self.markdown)}"


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
class Document:
    """A document to store (text or a ready embedding) or to remove."""

    doc_id: str
    text: str | None = None
    embedding: Sequence[float] | None = None
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    source: str | None = None
    author: str | None = None
    created_at: datetime | None = None
    operation: Literal["upsert", "delete"] = "upsert"


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    index: int
    text: str
    content_hash: str
    metadata: dict[str, MetadataValue]
    embedding: tuple[float, ...] | None = None  # set when the document came with its own vector


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


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CollectionStats:
    name: str
    count: int
    dimension: int | None
    metric: str | None


# --- hashing and ids ---------------------------------------------------------------------------


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def content_hash(text: str) -> str:
    """The embedding cache key of a chunk's text (independent of metadata)."""
    return sha256(text)


def vector_hash(vector: Sequence[float]) -> str:
    return sha256(json.dumps([float(x) for x in vector]))


def doc_key(doc_id: str) -> str:
    """A fixed-length prefix shared by every chunk id of a document (stores list ids by prefix)."""
    return sha256(doc_id)[:16]


def chunk_id(doc_id: str, index: int, text_hash: str, metadata: dict[str, MetadataValue]) -> str:
    """Deterministic: the same text and metadata at the same position always get the same id."""
    payload = text_hash + json.dumps(metadata, sort_keys=True, default=str)
    return f"{doc_key(doc_id)}:{index:05d}:{sha256(payload)[:16]}"


def scoped_collection(project_id: str, collection: str) -> str:
    """The physical collection of a project's logical one: stores share names across projects.

    Letters, digits and underscores only (Milvus' rule, also valid in Weaviate and Pinecone); the
    hash suffix keeps `a-b` and `a_b` apart.
    """
    slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{project_id}_{collection}").strip("_")[:180]
    return f"c_{slug}_{sha256(project_id + '/' + collection)[:8]}"


def validate_field_name(name: str) -> str:
    if not FIELD_NAME.fullmatch(name):
        raise FilterError(f"field name {name!r} must match {FIELD_NAME.pattern}")
    return name


# --- chunking ----------------------------------------------------------------------------------

_HEADING = re.compile(r"^#{1,6}\s")
_FENCE = re.compile(r"^(```|~~~)")


def _markdown_blocks(text: str) -> Iterator[tuple[bool, str]]:
    """Yield (starts_section, block): headings open sections, fenced code stays one block."""
    lines = text.splitlines()
    block: list[str] = []
    in_fence = False
    starts_section = False

    def flush() -> Iterator[tuple[bool, str]]:
        nonlocal block, starts_section
        joined = "\n".join(block).strip()
        if joined:
            yield starts_section, joined
        block, starts_section = [], False

    for line in lines:
        if _FENCE.match(line.strip()):
            if not in_fence:
                yield from flush()
            block.append(line)
            in_fence = not in_fence
            if not in_fence:
                yield from flush()
            continue
        if in_fence:
            block.append(line)
        elif _HEADING.match(line):
            yield from flush()
            block, starts_section = [line], True
        elif not line.strip():
            heading_only = starts_section and len(block) == 1
            if not heading_only:
                yield from flush()
        else:
            block.append(line)
    yield from flush()


def _plain_blocks(text: str) -> Iterator[tuple[bool, str]]:
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.strip():
            yield False, paragraph.strip()


def _windows(text: str, size: int) -> Iterator[str]:
    """Split a long block at word boundaries into pieces of at most `size` characters."""
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        piece = text[start:end].strip()
        if piece:
            yield piece
        start = end


def _tail(text: str, overlap: int) -> str:
    """The last `overlap` characters of a chunk, starting at a word boundary."""
    if overlap == 0 or len(text) <= overlap:
        return text if overlap else ""
    tail = text[-overlap:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < len(tail) - 1 else tail


def chunk_text(text: str, policy: ChunkingPolicy) -> list[str]:
    """Pack paragraphs into chunks of `policy.size`; headings start a new chunk; chunks overlap."""
    blocks = _markdown_blocks(text) if policy.markdown else _plain_blocks(text)
    packed: list[tuple[bool, str]] = []  # (continues the previous chunk's section, text)
    current, continues = "", False
    for starts_section, block in blocks:
        if current and (starts_section or len(current) + 2 + len(block) > policy.size):
            packed.append((continues, current))
            current = ""
        if not current:
            continues = bool(packed) and not starts_section
        for piece in _windows(block, policy.size) if len(block) > policy.size else [block]:
            if current and len(current) + 2 + len(piece) > policy.size:
                packed.append((continues, current))
                current, continues = "", True
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        packed.append((continues, current))
    chunks: list[str] = []
    for position, (continues, body) in enumerate(packed):
        if position and continues and policy.overlap:
            body = f"{_tail(packed[position - 1][1], policy.overlap)}\n\n{body}"
        chunks.append(body)
    return chunks


# --- documents ---------------------------------------------------------------------------------


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


# --- filters -----------------------------------------------------------------------------------

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
# A filter is user input compiled into a store's query language: bounded in every direction.
MAX_FILTER_DEPTH = 8  # nested $and/$or
MAX_FILTER_CONDITIONS = 256
MAX_FILTER_LIST = 1_024  # values of one $in/$nin
MAX_FILTER_TEXT = 1_024  # characters of one value


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Exists:
    field: str
    exists: bool


@dataclass(frozen=True)
class Junction:
    op: Literal["$and", "$or"]
    parts: tuple[FilterNode, ...]


FilterNode = Compare | Exists | Junction


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, str) and len(value) > MAX_FILTER_TEXT:
        raise FilterError(f"{where}: a value longer than {MAX_FILTER_TEXT} characters")
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{where}: value must be a finite number")
    if isinstance(value, str | int | float | bool):
        return value
    raise FilterError(f"{where}: value must be a string, number or boolean")


def _field_conditions(name: str, condition: Any) -> list[FilterNode]:
    validate_field_name(name)
    if not isinstance(condition, dict):
        return [Compare(name, "$eq", _scalar(condition, name))]
    if not condition:
        raise FilterError(f"{name}: empty condition")
    nodes: list[FilterNode] = []
    for op, value in condition.items():
        where = f"{name}.{op}"
        if op == "$exists":
            if not isinstance(value, bool):
                raise FilterError(f"{where}: expects true or false")
            nodes.append(Exists(name, value))
        elif op in ("$in", "$nin"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{where}: expects a non-empty list")
            if len(value) > MAX_FILTER_LIST:
                raise FilterError(f"{where}: more than {MAX_FILTER_LIST} values")
            nodes.append(Compare(name, op, tuple(_scalar(v, where) for v in value)))
        elif op in COMPARISONS:
            scalar = _scalar(value, where)
            if op in ("$gt", "$gte", "$lt", "$lte") and isinstance(scalar, bool):
                raise FilterError(f"{where}: expects a number or string")
            nodes.append(Compare(name, op, scalar))
        else:
            raise FilterError(f"{where}: unknown operator")
    return nodes


def parse_filter(spec: dict[str, Any] | None) -> FilterNode | None:
    """Parse Pinecone-style metadata filters (`{"year": {"$gte": 2020}, "$or": [...]}`), refusing
    any deeper than `MAX_FILTER_DEPTH` or with more than `MAX_FILTER_CONDITIONS` conditions."""
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise FilterError("filter must be an object")
    return _parse_filter(spec, 1, [0])


def _parse_filter(spec: dict[str, Any], depth: int, conditions: list[int]) -> FilterNode | None:
    """`conditions` counts the conditions parsed so far (shared by the whole filter)."""
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(f"nested deeper than {MAX_FILTER_DEPTH} levels")
    nodes: list[FilterNode] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key}: expects a non-empty list of filters")
            conditions[0] += len(value)
            if conditions[0] > MAX_FILTER_CONDITIONS:
                raise FilterError(f"more than {MAX_FILTER_CONDITIONS} conditions")
            parts = []
            for item in value:
                if not isinstance(item, dict):
                    raise FilterError(f"{key}: every element must be an object")
                node = _parse_filter(item, depth + 1, conditions) if item else None
                if node is not None:
                    parts.append(node)
            nodes.append(Junction(key, tuple(parts)))  # type: ignore[arg-type]
        elif key.startswith("$"):
            raise FilterError(f"{key}: unknown operator")
        else:
            found = _field_conditions(key, value)
            conditions[0] += len(found)
            nodes.extend(found)
        if conditions[0] > MAX_FILTER_CONDITIONS:
            raise FilterError(f"more than {MAX_FILTER_CONDITIONS} conditions")
    return nodes[0] if len(nodes) == 1 else Junction("$and", tuple(nodes))


def to_pinecone(node: FilterNode) -> dict[str, Any]:
    """Back to the canonical Pinecone form (explicit operators)."""
    if isinstance(node, Compare):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        return {node.field: {node.op: value}}
    if isinstance(node, Exists):
        return {node.field: {"$exists": node.exists}}
    return {node.op: [to_pinecone(part) for part in node.parts]}
