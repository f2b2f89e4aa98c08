"""Hashes and deterministic ids: the same text and metadata always get the same chunk id. No I/O."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from aietl.services.vector_sink.domain.model import MetadataValue


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
