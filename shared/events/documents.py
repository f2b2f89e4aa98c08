"""Contract of `documents.ingested`: a document to embed and store, or to remove."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from aietl.shared.events.base import Event, Name, Timestamp, Topic

MetadataValue = str | int | float | bool | None


class DocumentIngested(Event):
    topic: ClassVar[str] = Topic.DOCUMENTS_INGESTED

    connector_id: Name
    collection: Name
    doc_id: Name
    operation: Literal["upsert", "delete"] = "upsert"
    text: str | None = Field(default=None, max_length=2_000_000)
    embedding: list[float] | None = Field(default=None, max_length=8_192)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    source: str | None = None
    author: str | None = None
    created_at: Timestamp | None = None

    @model_validator(mode="after")
    def _content_for_upserts(self) -> DocumentIngested:
        if self.operation == "upsert" and self.text is None and self.embedding is None:
            raise ValueError("an upsert needs `text` or `embedding`")
        return self

    def partition_key(self) -> str:
        return f"{self.collection}/{self.doc_id}"
