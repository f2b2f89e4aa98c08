"""The per-document records on the embedded database (SQLite): cache use is stored with the chunk
ids and summed per collection by the ops status, as on PostgreSQL (tests/vector_sink/test_api.py)."""

from __future__ import annotations

from pathlib import Path

from aietl.services.ops import readers
from aietl.services.vector_sink import store
from aietl.services.vector_sink.domain.chunking import ChunkingPolicy
from aietl.services.vector_sink.domain.model import Document
from aietl.services.vector_sink.domain.planning import DocumentPlan, plan_document
from aietl.shared.db import Database
from aietl.shared.migrate import upgrade_async

POLICY = ChunkingPolicy(size=40, overlap=0)
TEXT = "Alpha tells the first part.\n\nBravo tells the second part.\n\nCharlie tells the third."


def _new_document(doc_id: str) -> DocumentPlan:
    plan = plan_document(Document(doc_id, text=TEXT), None, POLICY, "m")
    assert plan is not None and len(plan.to_write) == 3
    return plan


async def test_cache_use_is_recorded_and_summed_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'aietl.db'}"
    await upgrade_async(url)
    database = Database(url)
    plans = [_new_document("first"), _new_document("second")]
    cached = {plans[0].chunks[0].content_hash, plans[0].chunks[2].content_hash}
    try:
        async with database.transaction() as session:
            connector = await store.add_connector(session, "p", "kb", "milvus", {}, [], None)
            key = ("p", connector.id, "handbook")
            await store.mark_pending(session, *key, plans)  # new records: no cache use yet
        async with database.sessions() as session:
            pending = await readers.collections(session, "p", include_cache=False)
        assert [
            (c.documents, c.cache_hits, c.cache_lookups, c.cache_hit_rate) for c in pending.collections
        ] == [(0, 0, 0, None)]
        async with database.transaction() as session:
            await store.commit_plans(session, *key, plans, cached)
        async with database.sessions() as session:
            status = await readers.collections(session, "p", include_cache=True)
        [handbook] = status.collections
        assert (handbook.documents, handbook.chunks, handbook.pending_chunks) == (2, 6, 0)
        assert (handbook.cache_hits, handbook.cache_lookups, handbook.cache_hit_rate) == (4, 6, 4 / 6)
    finally:
        await database.dispose()
