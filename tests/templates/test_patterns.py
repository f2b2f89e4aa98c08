"""Every built-in table pattern run on PostgreSQL, ClickHouse (chDB) and SQLite, compared with the oracle.

Each scenario also reruns the same batch and checks that the rerun writes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aietl.services.runtime import Runtime
from tests.templates import oracle
from tests.templates.harness import Backend, normalized

DIALECTS = ["postgres", "clickhouse", "sqlite"]
NAMES = ["id", "v", "seq"]


@pytest.fixture(params=DIALECTS)
async def backend(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Backend]:
    opened = await Backend.open(runtime, request.param)
    yield opened
    await opened.drop()


def is_delete(row: dict) -> bool:
    return str(row.get("op")).upper() == "DELETE"


def base_config(backend: Backend, **extra: object) -> dict:
    return {
        "source": backend.table("src"),
        "target": backend.table("tgt"),
        "columns": [{"name": "id"}, {"name": "v", "source": "val"}, {"name": "seq"}],
        "keys": ["id"],
        **extra,
    }


def renamed(rows: list[dict]) -> list[dict]:
    """Source rows use `val`; the target calls it `v`."""
    return [{("v" if k == "val" else k): value for k, value in row.items()} for row in rows]


async def target_rows(backend: Backend, columns: list[str], flags: int = 0) -> list[tuple]:
    found = await backend.rows(f"SELECT {', '.join(columns)} FROM {backend.qualified('tgt')}")
    return normalized(found, flags)


async def test_full_load_syncs_and_reruns_idle(backend: Backend) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int"})
    rows = [{"id": i, "val": f"v{i}" if i != 3 else None, "seq": i} for i in range(1, 6)]
    await backend.insert("src", rows)
    config = base_config(backend)

    first = await backend.run("full_load", config)
    assert first.rows_written == 5
    assert await target_rows(backend, NAMES) == oracle.full_load(renamed(rows), ["id"], NAMES)
    assert (await backend.run("full_load", config)).rows_written == 0

    await backend.execute(f"DELETE FROM {backend.qualified('src')} WHERE id IN (2, 4)")
    await backend.insert("src", [{"id": 4, "val": "changed", "seq": 9}, {"id": 7, "val": "new", "seq": 7}])
    rows = [r for r in rows if r["id"] not in (2, 4)] + [
        {"id": 4, "val": "changed", "seq": 9},
        {"id": 7, "val": "new", "seq": 7},
    ]
    third = await backend.run("full_load", config)
    assert third.rows_written == 3  # 2 gone, 4 changed, 7 new
    assert await target_rows(backend, NAMES) == oracle.full_load(renamed(rows), ["id"], NAMES)
    assert (await backend.run("full_load", config)).rows_written == 0


async def test_incremental_watermark_with_lag(backend: Backend) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int"})
    config = base_config(backend, watermark_column="seq", watermark_type="number", lag_seconds=5)
    source = [{"id": i, "val": f"v{i}", "seq": i} for i in range(1, 11)]
    await backend.insert("src", source)
    state = oracle.incremental({}, renamed(source), ["id"], "seq", 5)

    assert (await backend.run("incremental", config)).rows_written == 10
    assert await target_rows(backend, NAMES) == sorted(tuple(r[n] for n in NAMES) for r in state.values())
    rerun = await backend.run("incremental", config)
    assert rerun.rows_written == 0
    assert rerun.high_watermark == "10"

    late = [
        {"id": 20, "val": "late within lag", "seq": 7},
        {"id": 21, "val": "too late", "seq": 2},
        {"id": 3, "val": "updated", "seq": 12},
        {"id": 3, "val": "older update", "seq": 11},
    ]
    await backend.insert("src", late)
    source += late
    state = oracle.incremental(state, renamed(source), ["id"], "seq", 5)
    assert (await backend.run("incremental", config)).rows_written == 2
    expected = sorted(tuple(r[n] for n in NAMES) for r in state.values())
    assert await target_rows(backend, NAMES) == expected
    assert (20, "late within lag", 7) in expected
    assert all(row[0] != 21 for row in expected)
    assert (await backend.run("incremental", config)).rows_written == 0


async def test_incremental_timestamp_lag_renders_and_runs(backend: Backend) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "ts": "ts"})
    config = {
        "source": backend.table("src"),
        "target": backend.table("tgt"),
        "columns": [{"name": "id"}, {"name": "val"}, {"name": "ts"}],
        "keys": ["id"],
        "watermark_column": "ts",
        "lag_seconds": 3600,
    }
    await backend.execute(
        f"INSERT INTO {backend.qualified('src')} VALUES (2, 'b', '2026-01-01 12:30:00'), "
        "(3, 'c', '2026-01-01 13:00:00')"
    )
    assert (await backend.run("incremental", config)).rows_written == 2
    await backend.execute(
        f"INSERT INTO {backend.qualified('src')} VALUES (4, 'late, inside the hour', '2026-01-01 12:10:00'), "
        "(5, 'late, outside the hour', '2026-01-01 11:00:00')"
    )
    assert (await backend.run("incremental", config)).rows_written == 1
    assert [row[0] for row in await target_rows(backend, ["id"])] == [2, 3, 4]


async def test_incremental_older_landing_row_never_overwrites_a_newer_one(backend: Backend) -> None:
    """A landing table reloaded with an older row for key 4: the target keeps the newer row and the
    high watermark stays at 13:30 (it used to go back to 13:15)."""
    await backend.create_source("landing", {"id": "int", "val": "text", "ts": "ts"})
    config = {
        "source": backend.table("landing"),
        "target": backend.table("tgt"),
        "columns": [{"name": "id"}, {"name": "val"}, {"name": "ts"}],
        "keys": ["id"],
        "watermark_column": "ts",
        "lag_seconds": 3600,
    }
    landing = backend.qualified("landing")
    await backend.execute(
        f"INSERT INTO {landing} VALUES (4, 'newer', '2026-01-01 13:30:00'), "
        "(5, 'other', '2026-01-01 13:00:00')"
    )
    first = await backend.run("incremental", config)
    assert first.rows_written == 2 and "13:30" in str(first.high_watermark)

    await backend.execute(f"DELETE FROM {landing} WHERE 1 = 1")
    await backend.execute(
        f"INSERT INTO {landing} VALUES (4, 'older', '2026-01-01 13:15:00'), "
        "(6, 'new key, late', '2026-01-01 12:45:00'), (5, 'same watermark', '2026-01-01 13:00:00')"
    )
    second = await backend.run("incremental", config)
    assert second.rows_written == 1  # key 6 only: key 4's row is older, key 5's is not newer
    assert second.high_watermark == first.high_watermark
    assert [row[:2] for row in await target_rows(backend, ["id", "val"])] == [
        (4, "newer"),
        (5, "other"),
        (6, "new key, late"),
    ]
    assert (await backend.run("incremental", config)).rows_written == 0


async def test_cdc_applies_latest_change_ignores_stale_and_tombstoned(backend: Backend) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int", "op": "text"})
    config = base_config(backend, sequence_column="seq", operation_column="op")
    batch1: list[dict[str, Any]] = [
        {"id": 1, "val": "a", "seq": 1, "op": "INSERT"},
        {"id": 1, "val": "b", "seq": 3, "op": "UPDATE"},
        {"id": 2, "val": "x", "seq": 1, "op": "INSERT"},
        {"id": 2, "val": None, "seq": 4, "op": "DELETE"},
        {"id": 3, "val": "q", "seq": 2, "op": "INSERT"},
    ]
    await backend.insert("src", batch1)
    assert (await backend.run("cdc", config)).rows_written == 3
    expected = oracle.cdc(renamed(batch1), ["id"], "seq", is_delete)
    assert await target_rows(backend, NAMES) == sorted(tuple(r[n] for n in NAMES) for r in expected.values())
    assert (await backend.run("cdc", config)).rows_written == 0

    batch2: list[dict[str, Any]] = [
        {"id": 1, "val": "stale", "seq": 2, "op": "UPDATE"},  # older than the target's sequence
        {"id": 2, "val": "zombie", "seq": 3, "op": "UPDATE"},  # older than the delete's tombstone
        {"id": 3, "val": "r", "seq": 5, "op": "UPDATE"},
        {"id": 4, "val": None, "seq": 1, "op": "DELETE"},  # delete of a key never seen
        {"id": 5, "val": "n", "seq": 1, "op": "INSERT"},
        {"id": 5, "val": "gone", "seq": 2, "op": "DELETE"},
    ]
    await backend.insert("src", batch2)
    await backend.run("cdc", config)
    expected = oracle.cdc(renamed(batch1 + batch2), ["id"], "seq", is_delete)
    assert await target_rows(backend, NAMES) == sorted(tuple(r[n] for n in NAMES) for r in expected.values())
    assert (await backend.run("cdc", config)).rows_written == 0

    batch3 = [{"id": 2, "val": "reborn", "seq": 6, "op": "INSERT"}]  # newer than the tombstone
    await backend.insert("src", batch3)
    assert (await backend.run("cdc", config)).rows_written == 1
    expected = oracle.cdc(renamed(batch1 + batch2 + batch3), ["id"], "seq", is_delete)
    assert await target_rows(backend, NAMES) == sorted(tuple(r[n] for n in NAMES) for r in expected.values())


SCD2_BATCHES: list[list[dict[str, Any]]] = [
    [  # several changes per key, a no-op change, a delete (lower case), a key with a NULL value
        {"id": 1, "val": "a", "seq": 10, "op": "INSERT"},
        {"id": 1, "val": "b", "seq": 30, "op": "UPDATE"},
        {"id": 1, "val": "b", "seq": 40, "op": "UPDATE"},
        {"id": 2, "val": "x", "seq": 10, "op": "INSERT"},
        {"id": 2, "val": None, "seq": 50, "op": "delete"},
        {"id": 3, "val": None, "seq": 20, "op": "INSERT"},
    ],
    [  # late and out-of-order rows land by sequence; a delete of an unknown key; a re-insert after
        # a delete; a late change splitting the deleted version of key 2
        {"id": 1, "val": "late", "seq": 20, "op": "UPDATE"},
        {"id": 3, "val": "filled", "seq": 15, "op": "UPDATE"},
        {"id": 4, "val": None, "seq": 5, "op": "DELETE"},
        {"id": 2, "val": "back", "seq": 60, "op": "INSERT"},
        {"id": 2, "val": "between", "seq": 30, "op": "UPDATE"},
    ],
    [  # a change equal to the current version, a new key with two changes at once
        {"id": 3, "val": None, "seq": 70, "op": "UPDATE"},
        {"id": 5, "val": "p", "seq": 1, "op": "INSERT"},
        {"id": 5, "val": "q", "seq": 2, "op": "UPDATE"},
    ],
    [  # double deletes; a late delete that turns a former no-op (key 1 at 40) into a re-insert;
        # a delete arriving before the insert it ends
        {"id": 5, "val": None, "seq": 3, "op": "Delete"},
        {"id": 5, "val": None, "seq": 4, "op": "DELETE"},
        {"id": 1, "val": None, "seq": 35, "op": "DELETE"},
        {"id": 6, "val": None, "seq": 9, "op": "DELETE"},
    ],
    [  # no-op re-sends of earlier changes, the insert key 6's delete ended, a delete and a double
        # delete of key 2's re-inserted version, an update of a key never inserted
        {"id": 1, "val": "a", "seq": 10, "op": "INSERT"},
        {"id": 1, "val": "b", "seq": 30, "op": "UPDATE"},
        {"id": 6, "val": "r", "seq": 8, "op": "INSERT"},
        {"id": 2, "val": None, "seq": 65, "op": "DELETE"},
        {"id": 2, "val": None, "seq": 70, "op": "DELETE"},
        {"id": 7, "val": "only", "seq": 100, "op": "UPDATE"},
    ],
]
SCD2_NAMES = ["id", "v"]
HISTORY = [*SCD2_NAMES, "valid_from", "valid_to", "is_current", "is_deleted"]
ARRIVAL_ORDERS = {"in order": [0, 1, 2, 3, 4], "reversed": [4, 3, 2, 1, 0], "shuffled": [2, 4, 0, 3, 1]}


def scd2_expected(rows: list[dict], hard_deletes: str) -> list[tuple]:
    return oracle.scd2([renamed(rows)], ["id"], "seq", ["v"], is_delete, hard_deletes, SCD2_NAMES)


async def scd2_history(backend: Backend) -> list[tuple]:
    return await target_rows(backend, HISTORY, flags=2)


async def feed_scd2(backend: Backend, config: dict, batches: list[list[dict]], hard_deletes: str) -> None:
    """Append each batch to the change log, run, compare with the oracle, rerun idle."""
    seen: list[dict] = []
    for batch in batches:
        await backend.insert("src", batch)
        seen += batch
        # the change table is a log: every run reads all of it (a rerun of old batches included)
        await backend.run("scd2", config)
        assert await scd2_history(backend) == scd2_expected(seen, hard_deletes)
        assert (await backend.run("scd2", config)).rows_written == 0


@pytest.mark.parametrize("hard_deletes", ["ignore", "invalidate", "new_record"])
async def test_scd2_history_matches_oracle(backend: Backend, hard_deletes: str) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int", "op": "text"})
    config = base_config(backend, sequence_column="seq", operation_column="op", hard_deletes=hard_deletes)
    await feed_scd2(backend, config, SCD2_BATCHES, hard_deletes)
    current = await backend.rows(
        f"SELECT id, COUNT(*) FROM {backend.qualified('tgt')} "
        "WHERE is_current = TRUE GROUP BY id HAVING COUNT(*) > 1"
    )
    assert current == []


@pytest.mark.parametrize("order", list(ARRIVAL_ORDERS))
async def test_scd2_any_arrival_order_ends_in_the_same_history(backend: Backend, order: str) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int", "op": "text"})
    config = base_config(backend, sequence_column="seq", operation_column="op")
    await feed_scd2(backend, config, [SCD2_BATCHES[i] for i in ARRIVAL_ORDERS[order]], "invalidate")
    assert await scd2_history(backend) == scd2_expected(
        [row for batch in SCD2_BATCHES for row in batch], "invalidate"
    )


# The histories of keys 1 and 2 after the five batches, worked out by hand (docs/templates.md shows
# the same example): (id, v, valid_from, valid_to, is_current, is_deleted).
KEY_1_AND_2: dict[str, list[tuple[Any, ...]]] = {
    "invalidate": [
        (1, "a", 10, 20, False, False),
        (1, "late", 20, 30, False, False),
        (1, "b", 30, 35, False, True),  # closed by the late delete at 35
        (1, "b", 40, None, True, False),  # the former no-op at 40 re-inserts after that delete
        (2, "x", 10, 30, False, False),
        (2, "between", 30, 50, False, True),  # the late change split the deleted version
        (2, "back", 60, 65, False, True),  # re-inserted, deleted again; the double delete at 70 is moot
    ],
    "new_record": [
        (1, "a", 10, 20, False, False),
        (1, "late", 20, 30, False, False),
        (1, "b", 30, 35, False, False),
        (1, None, 35, 40, False, True),  # the delete's marker version
        (1, "b", 40, None, True, False),
        (2, "x", 10, 30, False, False),
        (2, "between", 30, 50, False, False),
        (2, None, 50, 60, False, True),
        (2, "back", 60, 65, False, False),
        (2, None, 65, None, True, True),
    ],
}


@pytest.mark.parametrize("hard_deletes", list(KEY_1_AND_2))
async def test_scd2_flags_the_versions_deletes_closed(backend: Backend, hard_deletes: str) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int", "op": "text"})
    config = base_config(backend, sequence_column="seq", operation_column="op", hard_deletes=hard_deletes)
    for batch in SCD2_BATCHES:
        await backend.insert("src", batch)
        await backend.run("scd2", config)
    history = await scd2_history(backend)
    assert [row for row in history if row[0] in (1, 2)] == normalized(KEY_1_AND_2[hard_deletes])


@pytest.mark.parametrize("hard_deletes", ["ignore", "invalidate", "new_record"])
async def test_scd2_random_late_and_out_of_order_batches(backend: Backend, hard_deletes: str) -> None:
    import random

    generator = random.Random(f"scd2-{hard_deletes}")
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int", "op": "text"})
    config = base_config(backend, sequence_column="seq", operation_column="op", hard_deletes=hard_deletes)
    sequences = {key: generator.sample(range(1, 200), 12) for key in range(1, 6)}  # unique per key, shuffled
    changes = [
        {
            "id": key,
            "val": generator.choice(["a", "b", None]),
            "seq": seq,
            "op": generator.choice(["DELETE", "delete"]) if generator.random() < 0.2 else "UPSERT",
        }
        for key, seqs in sequences.items()
        for seq in seqs
    ]
    generator.shuffle(changes)
    await feed_scd2(
        backend, config, [changes[start : start + 20] for start in range(0, len(changes), 20)], hard_deletes
    )


@pytest.mark.parametrize("pattern", ["cdc", "scd2"])
async def test_delete_values_match_case_insensitively_and_a_log_without_deletes_warns(
    backend: Backend, pattern: str
) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int", "op": "text"})
    await backend.insert(
        "src",
        [
            {"id": 1, "val": "a", "seq": 1, "op": "I"},
            {"id": 1, "val": None, "seq": 2, "op": "D"},
            {"id": 2, "val": "b", "seq": 1, "op": "I"},
        ],
    )
    unmatched = base_config(backend, sequence_column="seq", operation_column="op")  # DELETE is never written
    warned = await backend.run(pattern, unmatched)
    assert warned.warning is not None and "delete_values" in warned.warning and "op" in warned.warning

    await backend.execute(f"DROP TABLE {backend.qualified('tgt')}")
    matched = base_config(backend, sequence_column="seq", operation_column="op", delete_values=["d"])
    quiet = await backend.run(pattern, matched)
    assert quiet.warning is None
    ids = {
        row[0]
        for row in await backend.rows(
            f"SELECT id FROM {backend.qualified('tgt')}"
            + (" WHERE is_current = TRUE" if pattern == "scd2" else "")
        )
    }
    assert ids == {2}  # key 1 was deleted by its lower-case 'D'


# docs/templates.md's worked example: one customer's change log arriving in five batches.
DOCS_EXAMPLE: list[list[dict[str, Any]]] = [
    [
        {"id": 7, "val": "basic", "seq": 10, "op": "INSERT"},
        {"id": 7, "val": "gold", "seq": 30, "op": "UPDATE"},
    ],
    [{"id": 7, "val": None, "seq": 50, "op": "DELETE"}],
    [{"id": 7, "val": "silver", "seq": 60, "op": "INSERT"}],
    [{"id": 7, "val": "platinum", "seq": 40, "op": "UPDATE"}],
    [
        {"id": 7, "val": None, "seq": 50, "op": "delete"},
        {"id": 7, "val": None, "seq": 70, "op": "DELETE"},
        {"id": 7, "val": None, "seq": 75, "op": "Delete"},
    ],
]
DOCS_HISTORY: dict[str, list[tuple[Any, ...]]] = {
    "invalidate": [
        (7, "basic", 10, 30, False, False),
        (7, "gold", 30, 40, False, False),
        (7, "platinum", 40, 50, False, True),
        (7, "silver", 60, 70, False, True),
    ],
    "new_record": [
        (7, "basic", 10, 30, False, False),
        (7, "gold", 30, 40, False, False),
        (7, "platinum", 40, 50, False, False),
        (7, None, 50, 60, False, True),
        (7, "silver", 60, 70, False, False),
        (7, None, 70, None, True, True),
    ],
}


@pytest.mark.parametrize("hard_deletes", list(DOCS_HISTORY))
async def test_scd2_worked_example_of_the_docs(backend: Backend, hard_deletes: str) -> None:
    await backend.create_source("src", {"id": "int", "val": "text", "seq": "int", "op": "text"})
    config = base_config(backend, sequence_column="seq", operation_column="op", hard_deletes=hard_deletes)
    for batch in DOCS_EXAMPLE:
        await backend.insert("src", batch)
        await backend.run("scd2", config)
    assert await scd2_history(backend) == normalized(DOCS_HISTORY[hard_deletes])
