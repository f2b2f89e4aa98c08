"""Every type real databases report is accepted: tables of PostgreSQL, MariaDB, SQLite and ClickHouse
(chDB) with them are created, observed, ALTERed (a rename, a type change, a column added and one
dropped) and observed again; the detector names exactly those changes.

PostGIS is not installed here: its `geometry(Point,4326)` spelling is covered by the parser tests,
PostgreSQL's own geometric types (point, box, polygon) by this one.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from aietl.services.drift import observer
from aietl.services.drift.domain import columns_of, detect
from aietl.services.runtime import Runtime
from aietl.shared.events.schema import Dialect, ObservedColumn

MYSQL_SERVER = os.environ.get("AIETL_TEST_MYSQL_URL", "mysql://aietl:aietl@127.0.0.1:3306")

POSTGRES_TYPES = {
    "search": "tsvector", "query": "tsquery", "attrs": "hstore", "email": "citext", "path": "ltree",
    "ip": "inet", "net": "cidr", "mac": "macaddr", "mac8": "macaddr8", "price": "money",
    "wait": "interval", "wait_ds": "interval day to second", "flags": "bit(3)", "mask": "varbit(5)",
    "doc": "xml", "raw": "json", "body": "jsonb", "ident": "uuid", "mood": "drift_mood",
    "positive": "drift_positive", "during": "tstzrange", "span": "int4range", "days": "daterange",
    "spot": "point", "area": "box", "shape": "polygon", "searches": "tsvector[]", "attr_list": "hstore[]",
    "emails": "citext[]", "paths": "ltree[]", "ips": "inet[]", "nets": "cidr[]", "macs": "macaddr[]",
    "prices": "money[]", "waits": "interval[]", "flag_list": "bit(3)[]", "docs": "xml[]", "raws": "json[]",
    "bodies": "jsonb[]", "idents": "uuid[]", "moods": "drift_mood[]", "spans": "int4range[]",
    "label": "varchar(20)", "amount": "numeric(10,2)",
}  # fmt: skip
MYSQL_TYPES = {
    "active": "tinyint(1)", "tags": "set('a','b','c')", "state": "enum('new','done')",
    "hits": "int(10) unsigned", "big": "bigint unsigned", "code": "int(6) unsigned zerofill",
    "small": "smallint", "mid": "mediumint unsigned", "doc": "json", "spot": "point", "area": "polygon",
    "shape": "geometry", "bit1": "bit(1)", "bits": "bit(8)", "born": "year", "at": "datetime(6)",
    "stamp": "timestamp", "body": "mediumtext", "blob_data": "varbinary(16)", "ratio": "double unsigned",
    "label": "varchar(20)", "amount": "decimal(10,2)",
}  # fmt: skip
SQLITE_TYPES = {
    "big": "UNSIGNED BIG INT", "native": "NATIVE CHARACTER(70)", "varying": "VARYING CHARACTER(255)",
    "free": "anything goes", "point": "FLOATING POINT", "when_at": "DATETIME", "flag": "BOOLEAN",
    "doc": "JSON", "label": "VARCHAR(20)", "amount": "NUMERIC(10,2)",
}  # fmt: skip
CLICKHOUSE_TYPES = {
    "name": "Nullable(String)", "kind": "LowCardinality(String)", "kinds": "LowCardinality(Nullable(String))",
    "tags": "Array(Nullable(Int32))", "attrs": "Map(String, UInt64)", "pair": "Tuple(a String, b Int32)",
    "at": "DateTime64(3, 'UTC')", "local_at": "DateTime('Europe/Berlin')", "price": "Decimal(18, 4)",
    "state": "Enum8('new' = 1, 'done' = 2)", "hits": "UInt64", "tiny": "Int8", "ip": "IPv4",
    "ident": "UUID", "label": "String", "amount": "Decimal(10, 2)",
}  # fmt: skip


def _columns(observed: list[ObservedColumn], dialect: Dialect):
    return columns_of(observed, dialect)


def _drifts(before: list[ObservedColumn], after: list[ObservedColumn], dialect: Dialect) -> set[tuple]:
    drifts = detect(_columns(before, dialect), _columns(after, dialect), dialect)
    for drift in drifts:  # every mapping is SQL (or a plain column reference)
        assert drift.suggested_mapping is not None and drift.suggested_mapping.transformation_logic
    return {(d.drift_type, d.column_name, d.previous_name) for d in drifts}


EXPECTED = {
    ("renamed_column", "title", "label"),
    ("type_change", "amount", None),
    ("new_column", "added", None),
    ("removed_column", "dropped", None),
}


def _assert_all_accepted(
    observed: list[ObservedColumn], declared: dict[str, str], dialect: Dialect
) -> dict[str, str]:
    """Every declared column is there and parsed; the canonical names of those not opaque."""
    parsed = {c.name: c for c in _columns(observed, dialect)}
    assert set(declared) <= set(parsed), set(declared) - set(parsed)
    known = {n: c.sql_type.canonical for n, c in parsed.items() if c.sql_type.family != "opaque"}
    return known


async def test_postgres_tables_of_every_type(runtime: Runtime) -> None:
    table = f"types_{uuid.uuid4().hex[:8]}"
    columns = ", ".join(f'"{name}" {type_}' for name, type_ in POSTGRES_TYPES.items())
    async with runtime.database.transaction() as session:
        for extension in ("hstore", "citext", "ltree"):
            await session.execute(text(f"CREATE EXTENSION IF NOT EXISTS {extension}"))
        await session.execute(
            text(
                "DO $$ BEGIN CREATE TYPE drift_mood AS ENUM ('sad', 'ok'); "
                "CREATE DOMAIN drift_positive AS integer CHECK (VALUE > 0); "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        )
        await session.execute(
            text(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, {columns}, dropped text)")
        )
        await session.execute(text(f"INSERT INTO {table} (label, amount) VALUES ('a', 1.5)"))
    url = runtime.settings.resolved_database_url
    before = (await observer.read_sql_tables(url, [table], samples=3)).columns[table]
    reported = {c.name: c.type for c in before}
    assert reported["search"] == "tsvector" and reported["mood"] == "drift_mood"
    assert reported["positive"] == "drift_positive" and reported["nets"] == "cidr[]"
    known = _assert_all_accepted(before, POSTGRES_TYPES, "postgres")
    assert known["email"] == "string:citext" and known["attrs"] == "map:hstore"
    assert known["ips"] == "array<network>" and known["wait_ds"] == "interval"

    async with runtime.database.transaction() as session:
        for statement in (
            "RENAME COLUMN label TO title",
            "ALTER COLUMN amount TYPE numeric(14,2)",
            "ADD COLUMN added citext[]",
            "DROP COLUMN dropped",
        ):
            await session.execute(text(f"ALTER TABLE {table} {statement}"))
    after = (await observer.read_sql_tables(url, [table], samples=3)).columns[table]
    assert _drifts(before, after, "postgres") == EXPECTED


@pytest.fixture
async def mysql_url() -> AsyncIterator[str]:
    """A fresh database on the local MariaDB (deploy/local/start-services.sh starts it)."""
    name = f"aietl_{uuid.uuid4().hex[:8]}"
    server = create_async_engine(MYSQL_SERVER.replace("mysql://", "mysql+aiomysql://", 1))
    async with server.connect() as connection:
        await connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"{MYSQL_SERVER}/{name}"
    finally:
        async with server.connect() as connection:
            await connection.execute(text(f"DROP DATABASE {name}"))
        await server.dispose()


async def test_mariadb_tables_of_every_type(mysql_url: str) -> None:
    engine = create_async_engine(mysql_url.replace("mysql://", "mysql+aiomysql://", 1))
    columns = ", ".join(f"`{name}` {type_}" for name, type_ in MYSQL_TYPES.items())
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(f"CREATE TABLE items (id bigint PRIMARY KEY, {columns}, dropped text)")
            )
            await connection.execute(text("INSERT INTO items (id, label, amount) VALUES (1, 'a', 1.5)"))
        before = (await observer.read_sql_tables(mysql_url, ["items"], samples=3)).columns["items"]
        reported = {c.name: c.type for c in before}
        assert reported["active"] == "tinyint(1)" and reported["hits"] == "int(10) unsigned"
        assert reported["state"] == "enum('new','done')"
        known = _assert_all_accepted(before, MYSQL_TYPES, "mysql")
        assert known["active"] == "boolean" and known["big"] == "uint64" and known["spot"] == "geometry:point"
        assert next(c for c in before if c.name == "label").sample_values == ["a"]

        async with engine.begin() as connection:
            for statement in (
                "RENAME COLUMN label TO title",
                "MODIFY COLUMN amount decimal(14,2)",
                "ADD COLUMN added set('x','y')",
                "DROP COLUMN dropped",
            ):
                await connection.execute(text(f"ALTER TABLE items {statement}"))
        after = (await observer.read_sql_tables(mysql_url, ["items"], samples=3)).columns["items"]
        assert _drifts(before, after, "mysql") == EXPECTED
    finally:
        await engine.dispose()


async def test_sqlite_tables_of_every_type(tmp_path: Path) -> None:
    path = tmp_path / "types.db"
    columns = ", ".join(f'"{name}" {type_}' for name, type_ in SQLITE_TYPES.items())
    with sqlite3.connect(path) as connection:
        connection.execute(f"CREATE TABLE items (id INTEGER PRIMARY KEY, untyped, {columns}, dropped TEXT)")
    url = f"sqlite:///{path}"
    before = (await observer.read_sql_tables(url, ["items"])).columns["items"]
    known = _assert_all_accepted(before, SQLITE_TYPES, "sqlite")
    assert known["big"] == "int64" and known["native"] == "string" and known["point"] == "int64"
    assert known["untyped"] == "binary"  # no declared type: BLOB affinity
    with sqlite3.connect(path) as connection:
        for statement in (
            "RENAME COLUMN label TO title",
            "ADD COLUMN added anything goes",
            "DROP COLUMN dropped",
        ):
            connection.execute(f"ALTER TABLE items {statement}")
        # SQLite cannot change a column's type in place: rebuilt, as its documentation says
        connection.executescript(
            "CREATE TABLE rebuilt AS SELECT * FROM items; DROP TABLE items; "
            "CREATE TABLE items (id INTEGER PRIMARY KEY, untyped, "
            + ", ".join(
                f'"{"title" if n == "label" else n}" {"NUMERIC(14,2)" if n == "amount" else t}'
                for n, t in SQLITE_TYPES.items()
            )
            + ", added anything goes); INSERT INTO items SELECT * FROM rebuilt; DROP TABLE rebuilt;"
        )
    after = (await observer.read_sql_tables(url, ["items"])).columns["items"]
    assert _drifts(before, after, "sqlite") == EXPECTED


async def test_clickhouse_tables_of_every_type(runtime: Runtime) -> None:
    clickhouse = runtime.clickhouse()
    table = f"drift.types_{uuid.uuid4().hex[:8]}"
    columns = ", ".join(f"`{name}` {type_}" for name, type_ in CLICKHOUSE_TYPES.items())
    await clickhouse.command("CREATE DATABASE IF NOT EXISTS drift")
    await clickhouse.command(
        f"CREATE TABLE {table} (id UInt64, {columns}, dropped String) ENGINE = MergeTree ORDER BY id"
    )
    try:
        before = (await observer.read_clickhouse_tables(clickhouse, [table])).columns[table]
        known = _assert_all_accepted(before, CLICKHOUSE_TYPES, "clickhouse")
        assert known["tags"] == "array<int32>" and known["at"] == "timestamptz" and known["tiny"] == "int8"
        assert {c.name for c in before if c.nullable} == {"name", "kinds"}
        for statement in (
            "RENAME COLUMN label TO title",
            "MODIFY COLUMN amount Decimal(14, 2)",
            "ADD COLUMN added Map(String, Array(UInt8))",
            "DROP COLUMN dropped",
        ):
            await clickhouse.command(f"ALTER TABLE {table} {statement}")
        after = (await observer.read_clickhouse_tables(clickhouse, [table])).columns[table]
        assert _drifts(before, after, "clickhouse") == EXPECTED
    finally:
        await clickhouse.command(f"DROP TABLE {table}")
