"""Historical retrieval in PostgreSQL, ClickHouse and SQLite agrees with a brute-force oracle on random data:
ties between row and event times, rewrites of the same event time, TTL edges, late-arriving values."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from aietl.services.features.domain import OfflineRow, decode_online, latest_at
from aietl.services.features.stores import EntityValues, HistoricalFeature, OfflineStore, Window
from aietl.services.features.stores.clickhouse_offline import ClickHouseOfflineStore
from aietl.services.features.stores.sql_offline import SqlOfflineStore
from aietl.services.runtime import Runtime
from aietl.shared.db import Database
from aietl.shared.migrate import upgrade_async


@pytest.fixture(scope="module")
async def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    """The embedded offline store: a migrated SQLite file of its own."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('offline') / 'offline.db'}"
    await upgrade_async(url)
    database = Database(url)
    yield database
    await database.dispose()


@pytest.fixture(params=["postgresql", "clickhouse", "sqlite"])
def offline(request: pytest.FixtureRequest, runtime: Runtime) -> OfflineStore:
    if request.param == "clickhouse":
        return ClickHouseOfflineStore(runtime.clickhouse())
    if request.param == "sqlite":
        return SqlOfflineStore(request.getfixturevalue("sqlite_database"))
    return SqlOfflineStore(runtime.database)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_point_in_time_matches_brute_force_oracle(offline: OfflineStore, seed: int) -> None:
    rng = random.Random(seed)
    project = f"pit{uuid.uuid4().hex[:8]}"
    features = [HistoricalFeature("a@v1", 5), HistoricalFeature("b@v1", 20), HistoricalFeature("a@v2", 1_000)]
    entities = [f"e{i}" for i in range(12)]
    history: dict[tuple[str, str], list[tuple[int, int, object]]] = {}
    write_seq = 1_000
    for _batch in range(6):  # later batches carry older event times too: late data
        rows = []
        for _ in range(40):
            feature = rng.choice(features).field
            entity = rng.choice(entities)
            event = rng.randint(0, 60)
            value = rng.choice([rng.randint(-5, 5), rng.random(), f"s{rng.randint(0, 9)}", None, [1, 2]])
            rows.append(OfflineRow(feature, entity, event, orjson.dumps(value).decode()))
        # one value per key and batch (a batch is one upsert); rewrites happen across batches
        unique = {(r.feature, r.entity_id, r.event_us): r for r in rows}
        write_seq += 1
        await offline.write(project, list(unique.values()), write_seq)
        for row in unique.values():
            history.setdefault((row.feature, row.entity_id), []).append(
                (row.event_us, write_seq, orjson.loads(row.value_json))
            )
    entity_rows = [(rng.choice([*entities, "nobody"]), rng.randint(-1, 70)) for _ in range(300)]
    # exact ties and TTL edges: rows at an event time, and exactly TTL after it (+1 just beyond)
    for (field, entity), events in list(history.items())[:10]:
        ttl = next(f.ttl_us for f in features if f.field == field)
        event = events[0][0]
        entity_rows += [(entity, event), (entity, event + ttl), (entity, event + ttl + 1)]
    got = await offline.historical(project, entity_rows, features)
    for column, spec in zip(got, features, strict=True):
        expected = [
            latest_at(history.get((spec.field, entity), []), at, spec.ttl_us) for entity, at in entity_rows
        ]
        assert [None if raw is None else orjson.loads(raw) for raw in column] == expected, spec.field


async def test_latest_for_online_by_event_and_write_window(offline: OfflineStore) -> None:
    """Latest per (feature, entity) in the window, grouped per entity, encoded, expired ones left out."""
    project = f"lat{uuid.uuid4().hex[:8]}"
    await offline.write(project, [OfflineRow("f@v1", "e1", 10, "1"), OfflineRow("f@v1", "e1", 20, "2")], 100)
    await offline.write(
        project,
        [
            OfflineRow("f@v1", "e1", 15, '"late"'),
            OfflineRow("f@v1", "e2", 5, '"x"'),
            OfflineRow("g@v1", "e1", 1, "[1]"),
        ],
        200,
    )
    ttls = {"f@v1": 100, "g@v1": 10}

    def decoded(entities: list[EntityValues]) -> dict[str, tuple[int, int, dict[str, tuple[int, object]]]]:
        return {
            e.entity_id: (
                e.expire_at_us,
                e.value_count,
                {f: decode_online(p.encode()) for f, p in orjson.loads(e.values_json).items()},
            )
            for e in entities
        }

    by_event = await offline.latest_for_online(project, ttls, Window("event", 0, 20), now_us=12)
    assert decoded(by_event) == {"e1": (115, 1, {"f@v1": (15, "late")}), "e2": (105, 1, {"f@v1": (5, "x")})}
    by_write = await offline.latest_for_online(project, ttls, Window("written", 100, 200), now_us=0)
    assert decoded(by_write)["e1"] == (115, 2, {"f@v1": (15, "late"), "g@v1": (1, [1])})
    assert await offline.latest_for_online(project, ttls, Window("written", 200, 300), now_us=0) == []


async def test_materialisation_parts_split_entities_without_loss(offline: OfflineStore) -> None:
    """Copying in parts (ClickHouse splits big windows by entity) yields each entity exactly once."""
    project = f"par{uuid.uuid4().hex[:8]}"
    await offline.write(project, [OfflineRow("f@v1", f"e{i}", 10 + i, str(i)) for i in range(40)], 100)
    ttls, window = {"f@v1": 1_000}, Window("event", 0, 100)
    whole = await offline.latest_for_online(project, ttls, window, now_us=50)
    assert len(whole) == 40 and await offline.online_copy_parts(project, list(ttls), window) == 1
    if isinstance(offline, ClickHouseOfflineStore):
        parts = [await offline.latest_for_online(project, ttls, window, 50, (k, 3)) for k in range(3)]
        assert all(parts) and sorted(e for part in parts for e in part) == sorted(whole)
