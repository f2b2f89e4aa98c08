"""Live introspection: read real table schemas and publish them as `schema.observed`.

Each database is read from its own catalog, so the type is what the database itself reports and
no type is lost on the way: PostgreSQL `pg_attribute` with `format_type` (enums, domains,
`tsvector`, `citext`, PostGIS `geometry(Point,4326)`, arrays), MySQL/MariaDB
`information_schema.COLUMNS.COLUMN_TYPE` (`tinyint(1)`, `int(10) unsigned`, `enum('a','b')`),
SQLite `PRAGMA table_info` (the declared type), ClickHouse `system.columns`. Every event carries
the source's real dialect. With `samples`, a bounded sample of rows (`samples` x 5) gives each
column a few distinct values, its distinct ratio and its null ratio: evidence for renames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from aietl.shared.bus import create_broker, publish_event
from aietl.shared.clickhouse import ClickHouse
from aietl.shared.events import SchemaObserved
from aietl.shared.events.schema import Dialect, ObservedColumn, SampleValue
from aietl.shared.settings import Settings

log = structlog.get_logger(__name__)
SAMPLE_ROWS_PER_VALUE = 5  # rows read per distinct value asked for: the bounded sample
SQLITE_UNTYPED = "BLOB"  # a column declared without a type has BLOB affinity in SQLite


class ObserveError(ValueError):
    """The source cannot be read (bad URL, missing table); the message never contains credentials."""


def dialect_of(url: str) -> Dialect:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("clickhouse", "clickhousedb", "chdb", "http", "https"):
        return "clickhouse"
    raise ObserveError(
        f"url: unsupported scheme {scheme!r} (postgresql, mysql, mariadb, sqlite, clickhouse or chdb)"
    )


def _async_url(url: str) -> str:
    """Users write `postgresql://`, `mysql://` and `sqlite:///`; the async drivers are asyncpg,
    aiomysql and aiosqlite."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("mysql://", "mysql+aiomysql://"),
        ("mariadb://", "mysql+aiomysql://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url.replace("sqlite://", "sqlite+aiosqlite://", 1) if url.startswith("sqlite://") else url


def _sample(value: Any) -> SampleValue:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


@dataclass
class _Evidence:
    values: list[SampleValue] = field(default_factory=list)
    distinct_ratio: float | None = None
    null_ratio: float | None = None


def _evidence_by_column(
    names: Sequence[str], rows: Sequence[Sequence[Any]], limit: int
) -> dict[str, _Evidence]:
    """A few distinct values per column, and the distinct and null ratios of the sampled rows."""
    found = {name: _Evidence() for name in names}
    if not rows:
        return found
    for position, name in enumerate(names):
        column = [_sample(row[position]) for row in rows if position < len(row)]
        present = [value for value in column if value is not None]
        distinct = list(dict.fromkeys(present))
        found[name] = _Evidence(
            values=list(distinct[:limit]),
            distinct_ratio=round(len(distinct) / len(column), 4) if column else None,
            null_ratio=round(1 - len(present) / len(column), 4) if column else None,
        )
    return found


def _observed(
    name: str, type_name: str, nullable: bool, primary_key: bool, evidence: _Evidence | None
) -> ObservedColumn:
    evidence = evidence or _Evidence()
    return ObservedColumn(
        name=name,
        type=type_name or SQLITE_UNTYPED,
        nullable=nullable and not primary_key,
        primary_key=primary_key,
        sample_values=evidence.values,
        distinct_ratio=evidence.distinct_ratio,
        null_ratio=evidence.null_ratio,
    )


CATALOG = {
    "postgresql": """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
               coalesce(a.attnum = ANY(i.indkey), false)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
        WHERE c.relname = :table AND n.nspname = coalesce(:schema, current_schema())
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum""",
    "mysql": """
        SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES', COLUMN_KEY = 'PRI'
        FROM information_schema.COLUMNS
        WHERE TABLE_NAME = :table AND TABLE_SCHEMA = coalesce(:schema, DATABASE())
        ORDER BY ORDINAL_POSITION""",
}


def _catalog_rows(connection: Connection, table: str) -> list[tuple[str, str, bool, bool]]:
    """(name, type as the database reports it, nullable, in the primary key), in column order."""
    schema, _, name = table.rpartition(".")
    dialect = connection.dialect.name
    if dialect == "sqlite":
        if schema:
            raise ObserveError(f"tables: {table!r}: SQLite tables have no schema prefix")
        quoted = connection.dialect.identifier_preparer.quote(name)
        rows = connection.execute(text(f"PRAGMA table_info({quoted})")).fetchall()
        return [(row[1], row[2], not row[3], bool(row[5])) for row in rows]
    rows = connection.execute(text(CATALOG[dialect]), {"table": name, "schema": schema or None}).fetchall()
    return [(row[0], row[1], bool(row[2]), bool(row[3])) for row in rows]


def _read_sql_table(connection: Connection, table: str, samples: int) -> list[ObservedColumn]:
    rows = _catalog_rows(connection, table)
    if not rows:
        raise ObserveError(f"tables: {table!r} does not exist")
    evidence: dict[str, _Evidence] = {}
    if samples:
        preparer = connection.dialect.identifier_preparer
        quoted = ".".join(preparer.quote(part) for part in table.split("."))
        limit = int(samples) * SAMPLE_ROWS_PER_VALUE
        data = connection.execute(text(f"SELECT * FROM {quoted} LIMIT {limit}")).fetchall()
        evidence = _evidence_by_column([row[0] for row in rows], data, samples)
    return [
        _observed(name, type_name, nullable, key, evidence.get(name))
        for name, type_name, nullable, key in rows
    ]


@dataclass
class Observation:
    """What one read of a source gave: each table's columns, and why the others could not be read."""

    columns: dict[str, list[ObservedColumn]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


async def read_sql_tables(url: str, tables: Sequence[str], samples: int = 0) -> Observation:
    """Columns of `tables` in a PostgreSQL, MySQL/MariaDB or SQLite database; a table that cannot
    be read is reported in `failed` (the others are read all the same)."""
    try:
        engine = create_async_engine(_async_url(url))
    except Exception as error:
        raise ObserveError(f"url: cannot use it ({type(error).__name__})") from None
    observation = Observation()
    try:
        async with engine.connect() as connection:
            for table in tables:
                try:
                    observation.columns[table] = await connection.run_sync(_read_sql_table, table, samples)
                except ObserveError as error:
                    observation.failed[table] = str(error).removeprefix("tables: ")
                except Exception as error:
                    await connection.rollback()
                    observation.failed[table] = f"cannot read it ({type(error).__name__})"
    except Exception as error:
        raise ObserveError(f"url: cannot read the database ({type(error).__name__})") from None
    finally:
        await engine.dispose()
    return observation


async def read_clickhouse_tables(
    clickhouse: ClickHouse, tables: Sequence[str], samples: int = 0
) -> Observation:
    """Columns of `tables` (`db.table` or `table` in the current database) from `system.columns`."""
    observation = Observation()
    for table in tables:
        database, _, name = table.rpartition(".")
        rows = await clickhouse.query(
            "SELECT name, type, is_in_primary_key FROM system.columns "
            "WHERE database = if(empty({db:String}), currentDatabase(), {db:String}) AND table = {t:String} "
            "ORDER BY position",
            {"db": database, "t": name},
        )
        if not rows:
            observation.failed[table] = f"{table!r} does not exist"
            continue
        evidence: dict[str, _Evidence] = {}
        if samples:
            quoted = ".".join(f"`{part.replace('`', '')}`" for part in table.split("."))
            limit = int(samples) * SAMPLE_ROWS_PER_VALUE
            data = await clickhouse.query(f"SELECT * FROM {quoted} LIMIT {limit}")
            evidence = _evidence_by_column([r[0] for r in rows], data, samples)
        observation.columns[table] = [
            _observed(
                column,
                type_name,
                type_name.replace("LowCardinality(", "").startswith("Nullable("),
                bool(in_key),
                evidence.get(column),
            )
            for column, type_name, in_key in rows
        ]
    return observation


TableReader = Callable[[Sequence[str], int], Awaitable[Observation]]


def sql_reader(url: str) -> TableReader:
    return lambda tables, samples: read_sql_tables(url, tables, samples)


def clickhouse_reader(clickhouse: ClickHouse) -> TableReader:
    return lambda tables, samples: read_clickhouse_tables(clickhouse, tables, samples)


@dataclass
class Published:
    events: list[SchemaObserved]
    failed: dict[str, str]  # table -> why it was not observed


async def observe_once(
    broker: KafkaBroker,
    reader: TableReader,
    *,
    dialect: Dialect,
    project_id: str,
    connector_id: str,
    tables: Sequence[str],
    samples: int = 0,
    observed_by: str = "observer",
) -> Published:
    """Read every table once and publish one `schema.observed` per table that could be read; the
    others are returned with the reason (and logged), never dropped silently."""
    observation = await reader(tables, samples)
    events = [
        SchemaObserved(
            project_id=project_id,
            connector_id=connector_id,
            table_name=table,
            dialect=dialect,
            columns=columns,
            observed_by=observed_by,
        )
        for table, columns in observation.columns.items()
    ]
    for table, reason in observation.failed.items():
        log.warning("table not observed", connector_id=connector_id, table=table, reason=reason)
    for event in events:
        await publish_event(broker, event)
    return Published(events, observation.failed)


async def run(
    settings: Settings,
    *,
    url: str,
    tables: Sequence[str],
    project_id: str,
    connector_id: str,
    samples: int,
    interval_seconds: float | None,
    report: Callable[[str], None],
) -> None:
    """`aietl observe`: publish the tables' schemas once, or every `interval_seconds` until stopped."""
    dialect = dialect_of(url)
    clickhouse = ClickHouse(url) if dialect == "clickhouse" else None
    reader = clickhouse_reader(clickhouse) if clickhouse else sql_reader(url)
    broker = create_broker(settings, client_id="aietl-observer")
    await broker.connect()
    try:
        while True:
            try:
                published = await observe_once(
                    broker,
                    reader,
                    dialect=dialect,
                    project_id=project_id,
                    connector_id=connector_id,
                    tables=tables,
                    samples=samples,
                )
                names = ", ".join(event.table_name for event in published.events)
                report(f"published {len(published.events)} schema.observed event(s): {names}")
                for table, reason in published.failed.items():
                    report(f"not observed: {table}: {reason}")
                if published.failed and not published.events and interval_seconds is None:
                    raise ObserveError(f"tables: none could be read ({'; '.join(published.failed.values())})")
            except ObserveError as error:
                if interval_seconds is None:
                    raise
                report(f"observation failed, retrying in {interval_seconds}s: {error}")
            if interval_seconds is None:
                return
            await asyncio.sleep(interval_seconds)
    finally:
        await broker.stop()
        if clickhouse is not None:
            await clickhouse.close()
