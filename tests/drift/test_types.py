"""Type normalisation across dialects and classification of type changes (pure domain)."""

from __future__ import annotations

import pytest

from aietl.services.drift.domain import classify, normalise, parse_type
from aietl.shared.events.schema import Dialect

SAME_TYPES = [
    [
        ("postgres", "int4"),
        ("postgres", "integer"),
        ("mysql", "int(11)"),
        ("clickhouse", "Int32"),
        ("generic", "int"),
    ],
    [("postgres", "bigint"), ("clickhouse", "Int64"), ("sqlite", "INTEGER"), ("postgres", "bigserial")],
    [
        ("postgres", "text"),
        ("clickhouse", "String"),
        ("clickhouse", "Nullable(String)"),
        ("mysql", "longtext"),
    ],
    [("clickhouse", "LowCardinality(Nullable(String))"), ("sqlite", "TEXT"), ("generic", "string")],
    [("postgres", "character varying(255)"), ("mysql", "varchar(255)"), ("sqlite", "VARCHAR(255)")],
    [
        ("postgres", "timestamptz"),
        ("postgres", "timestamp with time zone"),
        ("clickhouse", "DateTime64(3, 'UTC')"),
    ],
    [("clickhouse", "DateTime"), ("mysql", "timestamp"), ("clickhouse", "DateTime64(6)")],
    [("postgres", "timestamp"), ("mysql", "datetime(6)"), ("sqlite", "DATETIME")],
    [("postgres", "numeric(10,2)"), ("mysql", "decimal(10,2)"), ("clickhouse", "Decimal(10, 2)")],
    [("postgres", "integer[]"), ("clickhouse", "Array(Int32)"), ("postgres", "int4[]")],
    [("postgres", "double precision"), ("postgres", "float8"), ("clickhouse", "Float64"), ("sqlite", "REAL")],
    [("postgres", "boolean"), ("mysql", "tinyint(1)"), ("clickhouse", "Bool")],
    [("postgres", "uuid"), ("clickhouse", "UUID")],
    [("postgres", "jsonb"), ("mysql", "json")],
]


@pytest.mark.parametrize("spellings", SAME_TYPES, ids=lambda s: s[0][1])
def test_spellings_of_one_type_normalise_alike(spellings) -> None:
    canonical = {normalise(type_string, dialect).canonical for dialect, type_string in spellings}
    assert len(canonical) == 1, canonical


def test_distinct_types_stay_distinct() -> None:
    assert normalise("numeric(10,2)", "postgres") != normalise("numeric(12,2)", "postgres")
    assert normalise("varchar(50)", "mysql") != normalise("varchar(255)", "mysql")
    assert normalise("Int32", "clickhouse") != normalise("UInt32", "clickhouse")
    assert normalise("timestamp", "postgres") != normalise("timestamptz", "postgres")
    assert normalise("integer[]", "postgres") != normalise("bigint[]", "postgres")


def test_clickhouse_nullable_wrapper_is_reported() -> None:
    assert parse_type("Nullable(Int64)", "clickhouse").nullable_wrapper
    assert parse_type("LowCardinality(Nullable(String))", "clickhouse").nullable_wrapper
    assert not parse_type("Int64", "clickhouse").nullable_wrapper


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("int", "bigint", "widening"),
        ("smallint", "int", "widening"),
        ("bigint", "int", "narrowing"),
        ("float", "double", "widening"),
        ("double", "float", "narrowing"),
        ("varchar(50)", "varchar(255)", "widening"),
        ("varchar(255)", "text", "widening"),
        ("text", "varchar(50)", "narrowing"),
        ("decimal(10,2)", "decimal(12,2)", "widening"),
        ("decimal(10,2)", "decimal(12,4)", "widening"),
        ("decimal(12,2)", "decimal(10,2)", "narrowing"),
        ("decimal(10,4)", "decimal(10,2)", "narrowing"),
        ("int", "decimal(18,4)", "widening"),
        ("bigint", "decimal(10,2)", "narrowing"),
        ("date", "timestamp", "widening"),
        ("timestamp", "date", "narrowing"),
        ("int", "text", "widening"),
        ("text", "int", "incompatible"),
        ("date", "boolean", "incompatible"),
        ("boolean", "int", "widening"),
        ("int", "double", "widening"),
        ("bigint", "double", "narrowing"),
        ("int", "int", "same"),
    ],
)
def test_classification(old: str, new: str, expected: str) -> None:
    assert classify(normalise(old), normalise(new)) == expected


def test_unsigned_and_array_classification() -> None:
    assert classify(normalise("UInt32", "clickhouse"), normalise("Int64", "clickhouse")) == "widening"
    assert classify(normalise("UInt32", "clickhouse"), normalise("Int32", "clickhouse")) == "narrowing"
    assert classify(normalise("Int32", "clickhouse"), normalise("UInt64", "clickhouse")) == "narrowing"
    assert (
        classify(normalise("Array(Int32)", "clickhouse"), normalise("Array(Int64)", "clickhouse"))
        == "widening"
    )
    assert (
        classify(normalise("Array(Int32)", "clickhouse"), normalise("Int32", "clickhouse")) == "incompatible"
    )


@pytest.mark.parametrize(
    ("type_string", "dialect"), [("bogus_type", "postgres"), ("my_enum", "generic"), ("int int", "mysql")]
)
def test_unknown_types_are_opaque_names_never_refused(type_string: str, dialect: Dialect) -> None:
    parsed = normalise(type_string, dialect)
    assert parsed.family == "opaque" and parsed.detail == type_string
    assert classify(parsed, normalise(type_string, dialect)) == "same"
    assert classify(parsed, normalise("other_type", dialect)) == "incompatible"
    assert classify(parsed, normalise("text", dialect)) == "widening"  # every value has a text form


ACCEPTED = {  # (dialect, spelling) -> canonical: every type the databases report is understood
    ("postgres", "tsvector"): "opaque:tsvector",
    ("postgres", "tsquery"): "opaque:tsquery",
    ("postgres", "hstore"): "map:hstore",
    ("postgres", "citext"): "string:citext",
    ("postgres", "ltree"): "opaque:ltree",
    ("postgres", "cidr"): "network:cidr",
    ("postgres", "macaddr"): "opaque:macaddr",
    ("postgres", "money"): "decimal(19,4)",
    ("postgres", "interval day to second"): "interval",
    ("postgres", "bit(3)"): "bits(3)",
    ("postgres", "bit varying(5)"): "bits(5):varying",
    ("postgres", "xml"): "xml",
    ("postgres", "tsvector[]"): "array<opaque:tsvector>",
    ("postgres", "hstore[]"): "array<map:hstore>",
    ("postgres", "int4range"): "range:int4range",
    ("postgres", "geometry(Point,4326)"): "geometry:geometry(point,4326)",
    ("postgres", "geography"): "geometry:geography",
    ("postgres", "my_enum"): "opaque:my_enum",
    ("postgres", "public.my_domain"): "opaque:public.my_domain",
    ("mysql", "set('a','b')"): "enum:'a','b'",
    ("mysql", "int(10) unsigned zerofill"): "uint32",
    ("mysql", "linestring"): "geometry:linestring",
    ("clickhouse", "Map(String, UInt64)"): "map:map(string, uint64)",
    ("clickhouse", "Tuple(a String, b Int32)"): "struct:tuple(a string, b int32)",
    ("clickhouse", "Enum8('a' = 1, 'b' = 2)"): "enum:'a' = 1,'b' = 2",
    ("clickhouse", "Array(LowCardinality(Nullable(String)))"): "array<string>",
    ("sqlite", "UNSIGNED BIG INT"): "int64",
    ("sqlite", "FLOATING POINT"): "int64",  # SQLite's own rule: it contains INT
    ("sqlite", "anything goes"): "decimal",  # NUMERIC affinity
}


@pytest.mark.parametrize(("key", "canonical"), ACCEPTED.items(), ids=lambda v: str(v))
def test_every_reported_type_is_accepted(key: tuple[Dialect, str], canonical: str) -> None:
    dialect, spelling = key
    assert normalise(spelling, dialect).canonical == canonical


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("UInt64", "uint64"),  # ClickHouse's CamelCase
        ("Nullable(String)", "string"),
        ("Int8", "int8"),  # ClickHouse's 8-bit integer ...
        ("int8", "int64"),  # ... and PostgreSQL's (and DuckDB's) bigint
        ("INT8", "int64"),
        ("float8", "float64"),
        ("text[]", "array<string>"),
        ("tsvector", "opaque:tsvector"),
        ("tinyint(1)", "boolean"),
        ("int(10) unsigned", "uint32"),
        ("float", "float32"),
        ("double", "float64"),
    ],
)
def test_generic_reads_each_dialects_unambiguous_spelling(spelling: str, canonical: str) -> None:
    assert normalise(spelling, "generic").canonical == canonical


def test_only_an_outer_nullable_makes_the_column_nullable() -> None:
    assert parse_type("Nullable(Int64)", "clickhouse").nullable_wrapper
    assert not parse_type("Array(Nullable(Int64))", "clickhouse").nullable_wrapper
    assert not parse_type("Map(String, Nullable(Int64))", "clickhouse").nullable_wrapper


def test_classification_of_the_newer_families() -> None:
    assert classify(normalise("text", "postgres"), normalise("citext", "postgres")) == "widening"
    assert classify(normalise("inet", "postgres"), normalise("cidr", "postgres")) == "narrowing"
    assert classify(normalise("bit(3)", "postgres"), normalise("varbit(5)", "postgres")) == "widening"
    assert classify(normalise("hstore", "postgres"), normalise("jsonb", "postgres")) == "widening"
    assert classify(normalise("tsvector", "postgres"), normalise("text", "postgres")) == "widening"
    assert classify(normalise("text", "postgres"), normalise("tsvector", "postgres")) == "incompatible"
