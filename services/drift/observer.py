"""Live introspection: read real table schemas and publish them as `schema.observed`.

PostgreSQL and SQLite are read with SQLAlchemy's inspector (types compiled in the source's own
dialect, so `numeric(10,2)` stays `NUMERIC(10, 2)`); ClickHouse with `system.columns`. Optional
sample values (a few distinct values per column) give the rename detector more evidence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.bus import create_broker, publish_event
from shared.clickhouse import ClickHouse
from shared.events import SchemaObserved
from shared.events.schema import Dialect, ObservedColumn, SampleValue
from shared.settings import Settings

SAMPLE_LIMIT = 100


class ObserveError(ValueError):
    """The source cannot be read (bad URL, missing table); the message never contains credentials."""


def dialect_of(url: str) -> Dialect:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("clickhouse", "clickhousedb", "chdb", "http", "https"):
        return "clickhouse"
    raise ObserveError(f"url: unsupported scheme {scheme!r} (postgresql, sqlite, clickhouse or chdb)")


def _async_url(url: str) -> str:
    """Users write `postgresql://` and `sqlite:///`; the async drivers are asyncpg and aiosqlite."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url.replace("sqlite://", "sqlite+aiosqlite://", 1) if url.startswith("sqlite://") else url


def _sample(value: Any) -> SampleValue:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _samples_by_column(
    names: Sequence[str], rows: Sequence[Sequence[Any]], limit: int
) -> dict[str, list[SampleValue]]:
    found: dict[str, list[SampleValue]] = {name: [] for name in names}
    for row in rows:
        for name, value in zip(names, row, strict=False):
            sample = _sample(value)
            if sample is not None and sample not in found[name] and len(found[name]) < limit:
                found[name].append(sample)
    return found


def _read_sql_table(connection: Connection, table: str, samples: int) -> list[ObservedColumn]:
    schema, _, name = table.rpartition(".")
    inspector = inspect(connection)
    if not inspector.has_table(name, schema=schema or None):
        raise ObserveError(f"tables: {table!r} does not exist")
    key = set(inspector.get_pk_constraint(name, schema=schema or None).get("constrained_columns") or [])
    columns = inspector.get_columns(name, schema=schema or None)
    values: dict[str, list[SampleValue]] = {}
    if samples:
        preparer = connection.dialect.identifier_preparer
        quoted = ".".join(preparer.quote(part) for part in table.split("."))
        rows = connection.execute(text(f"SELECT * FROM {quoted} LIMIT {int(samples) * 5}")).fetchall()
        values = _samples_by_column([c["name"] for c in columns], rows, samples)
    return [
        ObservedColumn(
            name=column["name"],
            type=column["type"].compile(dialect=connection.dialect),
            nullable=bool(column["nullable"]) and column["name"] not in key,
            primary_key=column["name"] in key,
            sample_values=values.get(column["name"], []),
        )
        for column in columns
    ]


async def read_sql_tables(
    url: str, tables: Sequence[str], samples: int = 0
) -> dict[str, list[ObservedColumn]]:
    """Columns of `tables` in a PostgreSQL or SQLite database."""
    try:
        engine = create_async_engine(_async_url(url))
    except Exception as error:
        raise ObserveError(f"url: cannot use it ({type(error).__name__})") from None
    try:
        async with engine.connect() as connection:
            return {
                table: await connection.run_sync(lambda sync, t=table: _read_sql_table(sync, t, samples))
                for table in tables
            }
    except ObserveError:
        raise
    except Exception as error:
        raise ObserveError(f"url: cannot read the database ({type(error).__name__})") from None
    finally:
        await engine.dispose()


async def read_clickhouse_tables(
    clickhouse: ClickHouse, tables: Sequence[str], samples: int = 0
) -> dict[str, list[ObservedColumn]]:
    """Columns of `tables` (`db.table` or `table` in the current database) from `system.columns`."""
    result = {}
    for table in tables:
        database, _, name = table.rpartition(".")
        rows = await clickhouse.query(
            "SELECT name, type, is_in_primary_key FROM system.columns "
            "WHERE database = if(empty({db:String}), currentDatabase(), {db:String}) AND table = {t:String} "
            "ORDER BY position",
            {"db": database, "t": name},
        )
        if not rows:
            raise ObserveError(f"tables: {table!r} does not exist")
        values: dict[str, list[SampleValue]] = {}
        if samples:
            quoted = ".".join(f"`{part.replace('`', '')}`" for part in table.split("."))
            data = await clickhouse.query(f"SELECT * FROM {quoted} LIMIT {int(samples) * 5}")
            values = _samples_by_column([r[0] for r in rows], data, samples)
        result[table] = [
            ObservedColumn(
                name=column,
                type=type_name,
                nullable=type_name.replace("LowCardinality(", "").startswith("Nullable("),
                primary_key=bool(in_key),
                sample_values=values.get(column, []),
            )
            for column, type_name, in_key in rows
        ]
    return result


TableReader = Callable[[Sequence[str], int], Awaitable[dict[str, list[ObservedColumn]]]]


def sql_reader(url: str) -> TableReader:
    return lambda tables, samples: read_sql_tables(url, tables, samples)


def clickhouse_reader(clickhouse: ClickHouse) -> TableReader:
    return lambda tables, samples: read_clickhouse_tables(clickhouse, tables, samples)


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
) -> list[SchemaObserved]:
    """Read every table once and publish one `schema.observed` per table."""
    schemas = await reader(tables, samples)
    events = [
        SchemaObserved(
            project_id=project_id,
            connector_id=connector_id,
            table_name=table,
            dialect=dialect,
            columns=columns,
            observed_by=observed_by,
        )
        for table, columns in schemas.items()
    ]
    for event in events:
        await publish_event(broker, event)
    return events


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
                events = await observe_once(
                    broker,
                    reader,
                    dialect=dialect,
                    project_id=project_id,
                    connector_id=connector_id,
                    tables=tables,
                    samples=samples,
                )
                names = ", ".join(event.table_name for event in events)
                report(f"published {len(events)} schema.observed event(s): {names}")
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
