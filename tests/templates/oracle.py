"""Reference semantics of the built-in patterns in plain Python, independent of the SQL.

Each function answers "what must the target hold" for the changes seen so far; tests compare the
tables the rendered SQL produced on PostgreSQL and ClickHouse with these answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Row = dict[str, Any]


def key_of(row: Row, keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[key] for key in keys)


def full_load(source: Iterable[Row], keys: Sequence[str], names: Sequence[str]) -> list[tuple[Any, ...]]:
    rows = [row for row in source if all(row[key] is not None for key in keys)]
    return sorted(tuple(row[name] for name in names) for row in rows)


def incremental(
    target: dict[tuple[Any, ...], Row], source: Iterable[Row], keys: Sequence[str], watermark: str, lag: float
) -> dict[tuple[Any, ...], Row]:
    """One run: rows newer than (highest watermark in the target - lag), latest per key, upserted
    only over an older target row (a row never replaces a newer one, as in CDC)."""
    high = max((row[watermark] for row in target.values()), default=None)
    latest: dict[tuple[Any, ...], Row] = {}
    for row in source:
        if high is not None and not row[watermark] > high - lag:
            continue
        key = key_of(row, keys)
        if key not in latest or row[watermark] > latest[key][watermark]:
            latest[key] = row
    newer = {
        key: row
        for key, row in latest.items()
        if key not in target or row[watermark] > target[key][watermark]
    }
    return {**target, **newer}


def cdc(
    changes: Iterable[Row], keys: Sequence[str], sequence: str, is_delete: Any
) -> dict[tuple[Any, ...], Row]:
    """SCD1 state after all changes: per key the change with the highest sequence; deletes remove."""
    latest: dict[tuple[Any, ...], Row] = {}
    for change in changes:
        key = key_of(change, keys)
        if key not in latest or change[sequence] > latest[key][sequence]:
            latest[key] = change
    return {key: row for key, row in latest.items() if not is_delete(row)}


def scd2(
    batches: Sequence[Sequence[Row]],
    keys: Sequence[str],
    sequence: str,
    tracked: Sequence[str],
    is_delete: Any,
    hard_deletes: str,
    names: Sequence[str],
) -> list[tuple[Any, ...]]:
    """History after all batches: events per key by sequence (first seen wins at an equal sequence,
    a delete wins inside one batch), no-op changes collapsed, each version valid until the next.
    `names` are the stored columns (the sequence is stored as valid_from). A version closed by a
    delete is flagged is_deleted; in `new_record` mode the delete's own marker version is flagged."""
    events: dict[tuple[Any, ...], dict[Any, tuple[Row, bool]]] = {}
    for batch in batches:
        seen_now: dict[tuple[Any, ...], tuple[Row, bool]] = {}
        for row in batch:
            deleted = bool(is_delete(row))
            if deleted and hard_deletes == "ignore":
                continue
            slot = (key_of(row, keys), row[sequence])
            if slot not in seen_now or deleted:
                seen_now[slot] = (row, deleted)
        for (key, seq), event in seen_now.items():
            events.setdefault(key, {}).setdefault(seq, event)
    versions: list[tuple[Any, ...]] = []
    for key_events in events.values():
        kept: list[tuple[Any, Row, bool]] = []
        for seq in sorted(key_events):
            row, deleted = key_events[seq]
            if not kept:
                if not deleted:
                    kept.append((seq, row, deleted))
                continue
            _, last, last_deleted = kept[-1]
            if deleted:
                if not last_deleted:
                    kept.append((seq, row, deleted))
            elif last_deleted or any(row[name] != last[name] for name in tracked):
                kept.append((seq, row, deleted))
        for index, (seq, row, deleted) in enumerate(kept):
            following = kept[index + 1] if index + 1 < len(kept) else None
            valid_to = following[0] if following else None
            if deleted and hard_deletes != "new_record":
                continue
            flagged = deleted if hard_deletes == "new_record" else following is not None and following[2]
            versions.append((*(row[name] for name in names), seq, valid_to, valid_to is None, flagged))
    return sorted(versions, key=_sortable)


def _sortable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((value is None, value) for value in row)
