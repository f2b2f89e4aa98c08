"""Pure domain: chunking, ids, reconciliation plans, validation, batching, filters."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import pytest

from aietl.services.vector_sink.domain.chunking import ChunkingPolicy, chunk_text
from aietl.services.vector_sink.domain.filters import Compare, Exists, Junction, parse_filter
from aietl.services.vector_sink.domain.ids import scoped_collection
from aietl.services.vector_sink.domain.model import Document, FilterError, RejectedDocument
from aietl.services.vector_sink.domain.planning import (
    CacheUse,
    DocumentRecord,
    Limits,
    batches,
    make_chunks,
    plan_document,
    validate_document,
)

POLICY = ChunkingPolicy(size=200, overlap=40)
MARKDOWN = """# Install

Run the installer. It asks for a folder.

## Configure

Set the token in the config file.

```python
config = {"token": "x"}

print(config)
```

# Use

""" + " ".join(f"word{i}" for i in range(120))


def test_markdown_headings_start_new_chunks_and_code_stays_whole() -> None:
    chunks = chunk_text(MARKDOWN, POLICY)
    assert chunks[0].startswith("# Install")
    assert any(c.startswith("## Configure") for c in chunks)
    assert any(c.startswith("# Use") for c in chunks)  # a section never gets the previous one's tail
    assert not any("\n## Configure" in c or "\n# Use" in c for c in chunks)
    code = next(c for c in chunks if "```python" in c)
    assert "print(config)" in code  # the blank line inside the fence does not split it
    assert all(len(c) <= POLICY.size + POLICY.overlap + 2 for c in chunks)


def test_long_paragraphs_split_at_words_with_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(300))
    chunks = chunk_text(text, ChunkingPolicy(size=100, overlap=20, markdown=False))
    assert len(chunks) > 5
    for previous, current in itertools.pairwise(chunks):
        overlap = current.split("\n\n")[0]
        assert previous.endswith(overlap)  # the previous chunk's tail opens the next one
        assert not overlap.startswith(" ")
    words = {w for c in chunks for w in c.split()}
    assert words == {f"w{i}" for i in range(300)}  # nothing lost


def test_chunk_ids_are_deterministic_and_enriched() -> None:
    created = datetime(2026, 1, 2, tzinfo=UTC)
    doc = Document(
        "doc-1", text=MARKDOWN, metadata={"lang": "en"}, source="wiki", author="ann", created_at=created
    )
    first, second = make_chunks(doc, POLICY), make_chunks(doc, POLICY)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    prefix = first[0].id.split(":")[0]
    assert all(c.id.startswith(prefix + ":") for c in first)
    meta = first[1].metadata
    assert meta["doc_id"] == "doc-1" and meta["chunk_index"] == 1 and meta["source"] == "wiki"
    assert meta["author"] == "ann" and meta["timestamp"] == created.isoformat() and meta["lang"] == "en"
    assert meta["content_hash"] == first[1].content_hash
    changed_meta = make_chunks(Document("doc-1", text=MARKDOWN, metadata={"lang": "de"}), POLICY)
    assert {c.id for c in changed_meta}.isdisjoint(c.id for c in first)  # metadata change -> new ids


def test_plan_skips_unchanged_and_writes_only_new_chunks() -> None:
    doc = Document("d", text=MARKDOWN)
    plan = plan_document(doc, None, POLICY, "m")
    assert plan is not None and plan.to_write == plan.chunks and not plan.to_delete
    record = DocumentRecord(plan.fingerprint, plan.chunk_ids)
    assert plan_document(doc, record, POLICY, "m") is None
    assert plan_document(doc, record, POLICY, "other-model") is not None  # a new model re-embeds

    edited = Document("d", text=MARKDOWN.replace("Set the token", "Set the API token"))
    replan = plan_document(edited, record, POLICY, "m")
    assert replan is not None
    assert 0 < len(replan.to_write) < len(replan.chunks)  # untouched chunks are not rewritten
    assert replan.to_delete == record.chunk_ids - replan.chunk_ids

    pending = DocumentRecord(plan.fingerprint, plan.chunk_ids, frozenset({"orphan"}))
    retry = plan_document(doc, pending, POLICY, "m")
    assert retry is not None and retry.to_delete == {"orphan"} and not retry.to_write

    gone = plan_document(Document("d", operation="delete"), pending, POLICY, "m")
    assert gone is not None and gone.to_delete == record.chunk_ids | {"orphan"} and not gone.chunks
    assert plan_document(Document("new", operation="delete"), None, POLICY, "m") is None


def test_cache_use_counts_written_chunks_that_needed_a_vector_per_chunk() -> None:
    policy = ChunkingPolicy(size=40, overlap=0)
    text = "Alpha tells the first part.\n\nBravo tells the second part.\n\nAlpha tells the first part."
    plan = plan_document(Document("d", text=text), None, policy, "m")
    assert plan is not None and len(plan.to_write) == 3
    alpha, bravo = plan.chunks[0].content_hash, plan.chunks[1].content_hash
    assert plan.cache_use(set()) == CacheUse(lookups=3, hits=0)
    assert plan.cache_use({alpha}) == CacheUse(lookups=3, hits=2)  # the repeated text counts twice
    assert plan.cache_use({alpha, bravo}) == CacheUse(lookups=3, hits=3)

    kept = DocumentRecord("an earlier version", frozenset({plan.chunks[0].id}))
    replan = plan_document(Document("d", text=text), kept, policy, "m")
    assert replan is not None and replan.cache_use({alpha}) == CacheUse(lookups=2, hits=1)  # kept: no lookup

    own = plan_document(Document("v", text="caption", embedding=[0.1, 0.2]), None, policy, "m")
    assert own is not None and own.cache_use({own.chunks[0].content_hash}) == CacheUse(lookups=0, hits=0)


def test_document_with_its_own_embedding_is_one_chunk() -> None:
    chunks = make_chunks(Document("v", text="caption", embedding=[0.1, 0.2]), POLICY)
    assert len(chunks) == 1 and chunks[0].embedding == (0.1, 0.2) and chunks[0].text == "caption"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (Document("a"), "neither"),
        (Document("a", embedding=[1.0, 2.0]), "dimension 2"),
        (Document("a", text="x" * 101), "exceeds 100 bytes"),
        (Document("a", text="   "), "empty"),
        (Document("a", text="x", metadata={"doc_id": "y"}), "reserved"),
        (Document("a", text="x", metadata={"bad key": 1}), "must match"),
        (Document("a", text="x", metadata={"year": "2020"}), "metadata.year: expected int, got str"),
        (Document("a", text="x", metadata={"year": True}), "metadata.year: expected int, got bool"),
    ],
)
def test_validation_names_the_problem(document: Document, reason: str) -> None:
    with pytest.raises(RejectedDocument, match=reason):
        validate_document(document, 3, Limits(max_text_bytes=100), {"year": "int"})


def test_valid_typed_metadata_passes() -> None:
    document = Document("a", text="x", metadata={"year": 2020, "score": 1, "free": "any"})
    validate_document(document, 3, Limits(), {"year": "int", "score": "float"})


def test_batches_respect_count_and_bytes() -> None:
    assert list(batches(range(7), 3, 10**6, lambda _: 1)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([5, 5, 5, 20], 10, 10, lambda n: n)) == [[5, 5], [5], [20]]


def test_filters_parse_all_operators() -> None:
    node = parse_filter(
        {
            "year": {"$gte": 2020, "$lt": 2025},
            "$or": [{"lang": "en"}, {"lang": {"$in": ["de", "fr"]}}],
            "draft": {"$exists": False},
            "tag": {"$nin": ["x"]},
            "n": {"$ne": 3, "$gt": 1, "$lte": 9, "$eq": 4},
        }
    )
    assert isinstance(node, Junction) and node.op == "$and"
    assert Compare("year", "$gte", 2020) in node.parts and Exists("draft", False) in node.parts
    assert parse_filter(None) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"year": {"$regex": "x"}}, r"year.\$regex: unknown operator"),
        ({"$not": {}}, "unknown operator"),
        ({"a b": 1}, "field name"),
        ({"x": {"$in": []}}, "non-empty list"),
        ({"x": {"$gt": True}}, "number or string"),
        ({"x": {"$exists": 1}}, "true or false"),
        ({"x": [1]}, "string, number or boolean"),
    ],
)
def test_bad_filters_name_the_field(spec: dict, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(spec)


def nested_filter(depth: int) -> dict:
    """`{"x": 1}` inside `depth` levels of `$and`."""
    spec: dict = {"x": 1}
    for _ in range(depth):
        spec = {"$and": [spec]}
    return spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (nested_filter(5_000), "nested deeper than 8 levels"),  # would be a RecursionError, not a 4xx
        ({"x": {"$in": list(range(100_000))}}, "more than 1024 values"),
        ({"$or": [{"x": i} for i in range(100_000)]}, "more than 256 conditions"),
        ({f"f{i}": i for i in range(300)}, "more than 256 conditions"),
        ({"$and": [{}] * 1_000_000}, "more than 256 conditions"),
        ({"x": "y" * 100_000}, "longer than 1024 characters"),
        ({"x": {"$gt": float("nan")}}, "finite number"),
    ],
)
def test_hostile_filters_are_refused_fast(spec: dict, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(FilterError, match=message):
        parse_filter(spec)
    assert time.perf_counter() - started < 0.1
    assert parse_filter(nested_filter(7)) is not None


def test_scoped_collections_never_collide() -> None:
    assert scoped_collection("p1", "a-b") != scoped_collection("p1", "a_b")
    assert scoped_collection("p1", "docs") != scoped_collection("p2", "docs")
    assert scoped_collection("p.1", "Docs 2").replace("_", "").isalnum()
