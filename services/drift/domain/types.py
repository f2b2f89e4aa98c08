"""Type normalisation across SQL dialects and classification of type changes.

Type strings are parsed with sqlglot's `DataType` (never a hand-written table of strings); the
parsed type is reduced to a `SqlType`, a dialect-free description that two dialects agree on:
`int4` (PostgreSQL), `int` (MySQL) and `Int32` (ClickHouse) all become `int32`.

No type is refused: what sqlglot does not know (PostgreSQL's `tsvector`, `citext`, `ltree`, enums,
domains, extension types; SQLite's free-form declarations) is looked up among the well-known names
below, then reduced by SQLite's affinity rules (for SQLite), and otherwise kept as an *opaque* type,
compared by its name only.

The `generic` dialect reads a type the way the dialect that spells it so would: ClickHouse's
CamelCase names (`UInt64`, `Int8`, `Float64`, `Nullable(String)`, `LowCardinality(...)`,
`DateTime64(3)`) as ClickHouse; PostgreSQL's byte-sized aliases and array syntax as PostgreSQL
(`int8` is a 64-bit integer, `int2` 16-bit, `float8` a double, `text[]` an array); everything
else with sqlglot's dialect-free reading (`float` is 32-bit, `double` 64-bit), then as PostgreSQL
(`tsvector`, `serial`), then as MySQL (`int(10) unsigned`, `enum('a','b')`); MySQL's `tinyint(1)`
is a boolean. Observers that know their source send its real dialect, and then nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from aietl.shared.events.schema import Dialect

ChangeClass = Literal["same", "widening", "narrowing", "incompatible"]
DType = exp.DataType.Type


@dataclass(frozen=True, slots=True)
class SqlType:
    """A dialect-free type: family plus the parameters that decide whether a change loses data."""

    family: str
    bits: int | None = None  # integers and floats
    unsigned: bool = False
    precision: int | None = None  # decimals (None = unbounded)
    scale: int | None = None
    length: int | None = None  # strings, binaries and bit strings (None = unbounded)
    element: SqlType | None = None  # arrays
    detail: str = ""  # enums, maps, structs, named and opaque types: their canonical spelling

    @property
    def canonical(self) -> str:
        """A stable name; equal names mean the same type whatever the dialect."""
        if self.family == "integer":
            return f"{'u' if self.unsigned else ''}int{self.bits}"
        if self.family == "float":
            return f"float{self.bits}"
        if self.family == "decimal":
            return "decimal" if self.precision is None else f"decimal({self.precision},{self.scale or 0})"
        if self.family == "array":
            assert self.element is not None
            return f"array<{self.element.canonical}>"
        name = self.family if self.length is None else f"{self.family}({self.length})"
        return f"{name}:{self.detail}" if self.detail else name


INTEGER_BITS = {
    DType.TINYINT: (8, False),
    DType.UTINYINT: (8, True),
    DType.SMALLINT: (16, False),
    DType.USMALLINT: (16, True),
    DType.SMALLSERIAL: (16, False),
    DType.YEAR: (16, False),
    DType.MEDIUMINT: (24, False),
    DType.UMEDIUMINT: (24, True),
    DType.INT: (32, False),
    DType.UINT: (32, True),
    DType.SERIAL: (32, False),
    DType.BIGINT: (64, False),
    DType.UBIGINT: (64, True),
    DType.BIGSERIAL: (64, False),
    DType.INT128: (128, False),
    DType.UINT128: (128, True),
    DType.INT256: (256, False),
    DType.UINT256: (256, True),
}
FLOAT_BITS = {DType.FLOAT: 32, DType.DOUBLE: 64, DType.UDOUBLE: 64}
DECIMALS = {DType.DECIMAL, DType.DECIMAL32, DType.DECIMAL64, DType.DECIMAL128, DType.DECIMAL256}
DECIMALS |= {DType.BIGDECIMAL, DType.UDECIMAL}
MONEY = {DType.MONEY: (19, 4), DType.SMALLMONEY: (10, 4)}
STRINGS = {DType.VARCHAR, DType.NVARCHAR, DType.CHAR, DType.NCHAR, DType.BPCHAR, DType.TEXT, DType.NAME}
STRINGS |= {DType.MEDIUMTEXT, DType.LONGTEXT, DType.TINYTEXT, DType.FIXEDSTRING}
BINARIES = {DType.VARBINARY, DType.BINARY, DType.BLOB, DType.MEDIUMBLOB, DType.LONGBLOB, DType.TINYBLOB}
BINARIES |= {DType.IMAGE}
FAMILIES = {
    DType.BOOLEAN: "boolean",
    DType.DATE: "date",
    DType.DATE32: "date",
    DType.TIME: "time",
    DType.TIMETZ: "time",
    DType.TIMESTAMP: "timestamp",
    DType.TIMESTAMP_S: "timestamp",
    DType.TIMESTAMP_MS: "timestamp",
    DType.TIMESTAMP_NS: "timestamp",
    DType.DATETIME2: "timestamp",
    DType.SMALLDATETIME: "timestamp",
    DType.TIMESTAMPTZ: "timestamptz",
    DType.TIMESTAMPLTZ: "timestamptz",
    DType.INTERVAL: "interval",
    DType.JSON: "json",
    DType.JSONB: "json",
    DType.UUID: "uuid",
    DType.INET: "network",
    DType.IPV4: "network",
    DType.IPV6: "network",
    DType.IPADDRESS: "network",
    DType.XML: "xml",
}
RANGES = {DType.INT4RANGE, DType.INT8RANGE, DType.NUMRANGE, DType.TSRANGE, DType.TSTZRANGE, DType.DATERANGE}
RANGES |= {DType.INT4MULTIRANGE, DType.INT8MULTIRANGE, DType.NUMMULTIRANGE, DType.TSMULTIRANGE}
RANGES |= {DType.TSTZMULTIRANGE, DType.DATEMULTIRANGE}
GEOMETRIES = {DType.GEOMETRY, DType.GEOGRAPHY, DType.POINT, DType.RING, DType.POLYGON, DType.MULTIPOLYGON}
GEOMETRIES |= {DType.LINESTRING, DType.MULTILINESTRING}
ENUMS = {DType.ENUM, DType.ENUM8, DType.ENUM16, DType.SET}
WRAPPERS = {DType.LOWCARDINALITY}
NAMED = {DType.USERDEFINED, DType.UNKNOWN}
DECIMAL_DIGITS_OF_INTEGER = {8: 3, 16: 5, 24: 8, 32: 10, 64: 19, 128: 39, 256: 78}

# Types sqlglot reads as user-defined (or not at all), by their base name: PostgreSQL built-ins and
# extension types, and MySQL spatial types. Anything else unknown stays opaque.
WELL_KNOWN = {
    "citext": SqlType("string", detail="citext"),
    "cidr": SqlType("network", detail="cidr"),
    "interval": SqlType("interval"),
    "oid": SqlType("integer", bits=32, unsigned=True),
    "xml": SqlType("xml"),
    "hstore": SqlType("map", detail="hstore"),
}
GEOMETRY_NAMES = {"point", "line", "lseg", "box", "path", "polygon", "circle", "linestring"}
GEOMETRY_NAMES |= {"multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection"}
BIT_STRINGS = {"varbit": "varying", "bit varying": "varying", "bit": ""}
# ClickHouse's own CamelCase spellings: `generic` reads these as ClickHouse (case matters: `int8` is
# PostgreSQL's bigint, `Int8` ClickHouse's 8-bit integer).
CLICKHOUSE_SPELLING = re.compile(
    r"^(U?Int(8|16|32|64|128|256)|B?Float(16|32|64)|String|FixedString|Nullable|LowCardinality|Array|"
    r"Map|Tuple|Nested|DateTime64|Date32|Decimal(32|64|128|256)|Enum(8|16)|IPv4|IPv6|Object|Variant|"
    r"Dynamic|AggregateFunction|SimpleAggregateFunction|Nothing)\b"
)
# PostgreSQL's byte-sized aliases (`int8` is a bigint there, and in DuckDB) and its array syntax.
POSTGRES_SPELLING = re.compile(r"^(int[248]|float[48]|(small|big)?serial[248]?)\b|\[\]$", re.IGNORECASE)
NULLABLE_OUTSIDE = re.compile(r"^\s*(LowCardinality\s*\(\s*)?Nullable\s*\(", re.IGNORECASE)
SQLGLOT_DIALECTS = {"postgres": "postgres", "mysql": "mysql", "clickhouse": "clickhouse", "sqlite": "sqlite"}


@dataclass(frozen=True, slots=True)
class ParsedType:
    """A parsed type string: the dialect-free type, whether the type itself says NULL is allowed
    (ClickHouse `Nullable(...)`), and the sqlglot node to render it in any dialect (None for a type
    sqlglot cannot parse: it is then rendered as the source spelled it)."""

    sql_type: SqlType
    nullable_wrapper: bool
    node: exp.DataType | None

    @property
    def opaque(self) -> bool:
        """Known only by its name: compared as a name, never converted."""
        return self.sql_type.family == "opaque"


def _readers(text: str, dialect: Dialect) -> list[str | None]:
    """The sqlglot dialects to read a type string with, most likely first (see the module doc)."""
    if dialect != "generic":
        return [SQLGLOT_DIALECTS[dialect]]
    if CLICKHOUSE_SPELLING.match(text):
        return ["clickhouse"]
    if POSTGRES_SPELLING.match(text):
        return ["postgres"]
    return [None, "postgres", "mysql"]


def _sqlglot_node(text: str, reader: str | None) -> exp.DataType | None:
    try:
        # Parsed as the target of a CAST so that trailing garbage (`int int`) is not read as a type.
        cast = sqlglot.parse_one(f"CAST(NULL AS {text})", read=reader)
    except (SqlglotError, ValueError, TypeError, RecursionError):
        return None
    node = cast.args.get("to") if isinstance(cast, exp.Cast) else None
    return node if isinstance(node, exp.DataType) else None


def _named(node: exp.DataType) -> bool:
    """Whether sqlglot only knew the type's name (itself, or an element of it)."""
    return any(isinstance(n, exp.DataType) and n.this in NAMED for n in node.walk())


@lru_cache(maxsize=8_192)
def parse_type(type_string: str, dialect: Dialect = "generic") -> ParsedType:
    """Parse and normalise one type string. Never fails: an unknown type is opaque (its name)."""
    text = " ".join(type_string.split())
    if dialect == "mysql":
        text = re.sub(r"\s+zerofill\b", "", text, flags=re.IGNORECASE)  # display only
    nullable = bool(NULLABLE_OUTSIDE.match(text))
    fallback: tuple[exp.DataType, str | None] | None = None
    for reader in _readers(text, dialect):
        node = _sqlglot_node(text, reader)
        if node is None:
            continue
        if not _named(node):
            return ParsedType(_normalise(node, reader), nullable, node)
        fallback = fallback or (node, reader)
    if fallback is not None:  # an array of tsvector, a named type: normalised as far as known
        node, reader = fallback
        return ParsedType(_normalise(node, reader), nullable, node)
    return ParsedType(_by_name(text, dialect), nullable, None)


def normalise(type_string: str, dialect: Dialect = "generic") -> SqlType:
    return parse_type(type_string, dialect).sql_type


def _by_name(text: str, dialect: str | None) -> SqlType:
    """A type sqlglot could not read as one it knows: well-known names, SQLite affinity, else opaque."""
    lowered = text.lower().strip('"`')
    if lowered.endswith("[]"):
        return SqlType("array", element=_by_name(lowered[:-2], dialect))
    base = re.sub(r"\s*\(.*\)\s*$", "", lowered).strip()
    length = re.search(r"\((\d+)\)", lowered)
    if base in WELL_KNOWN:
        return WELL_KNOWN[base]
    if base.startswith("interval"):
        return SqlType("interval")
    if base in BIT_STRINGS:
        size = int(length.group(1)) if length else None
        if base == "bit" and size in (None, 1):
            return SqlType("boolean")
        return SqlType("bits", length=size, detail=BIT_STRINGS[base])
    if base in GEOMETRY_NAMES or base.startswith(("geometry", "geography")):
        return SqlType("geometry", detail=lowered.replace(" ", ""))
    if dialect == "sqlite":
        return _sqlite_affinity(lowered)
    return SqlType("opaque", detail=lowered)


def _sqlite_affinity(declared: str) -> SqlType:
    """SQLite's own rules for a declared type it does not know (section 3.1 of its datatype doc)."""
    upper = declared.upper()
    if "INT" in upper:
        return SqlType("integer", bits=64)
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return SqlType("string")
    if "BLOB" in upper or not upper:
        return SqlType("binary")
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return SqlType("float", bits=64)
    return SqlType("decimal")


def _int_param(node: exp.DataType, index: int) -> int | None:
    params = node.expressions
    if len(params) <= index:
        return None
    value = params[index]
    literal = value.this if isinstance(value, exp.DataTypeParam) else value
    text = literal.name if isinstance(literal, exp.Expression) else str(literal)
    return int(text) if text.isdigit() else None


def _inner(node: exp.DataType) -> exp.DataType | None:
    inner = node.expressions[0] if node.expressions else None
    return inner if isinstance(inner, exp.DataType) else None


def _normalise(node: exp.DataType, dialect: str | None) -> SqlType:
    kind = node.this
    if kind in NAMED or not isinstance(kind, DType):  # `interval day to second` is an expression
        return _by_name(node.sql(dialect=dialect), dialect)
    if kind in WRAPPERS or kind == DType.ARRAY:
        inner = _inner(node)
        if inner is None:
            return SqlType("opaque", detail=node.sql(dialect=dialect).lower())
        element = _normalise(inner, dialect)
        return element if kind in WRAPPERS else SqlType("array", element=element)
    if kind in INTEGER_BITS:
        if dialect in ("mysql", "postgres", None) and kind == DType.TINYINT and _int_param(node, 0) == 1:
            return SqlType("boolean")  # MySQL spells BOOLEAN as tinyint(1)
        bits, unsigned = INTEGER_BITS[kind]
        if dialect == "sqlite":
            bits = 64  # SQLite stores every integer in up to 8 bytes, whatever the declared name
        return SqlType("integer", bits=bits, unsigned=unsigned)
    if kind in FLOAT_BITS:
        return SqlType("float", bits=FLOAT_BITS[kind])
    if kind in DECIMALS:
        precision = _int_param(node, 0)
        return SqlType(
            "decimal", precision=precision, scale=(_int_param(node, 1) or 0) if precision else None
        )
    if kind in MONEY:
        precision, scale = MONEY[kind]
        return SqlType("decimal", precision=precision, scale=scale)
    if kind in STRINGS:
        bounded = kind not in (DType.TEXT, DType.MEDIUMTEXT, DType.LONGTEXT, DType.TINYTEXT)
        return SqlType("string", length=_int_param(node, 0) if bounded else None)
    if kind in BINARIES:
        return SqlType(
            "binary", length=_int_param(node, 0) if kind in (DType.VARBINARY, DType.BINARY) else None
        )
    if kind == DType.BIT:
        length = _int_param(node, 0)
        return SqlType("boolean") if length in (None, 1) else SqlType("bits", length=length)
    if kind in (DType.DATETIME, DType.DATETIME64):
        # ClickHouse DateTime/DateTime64 store an instant (UTC epoch): timestamptz elsewhere.
        return SqlType("timestamptz" if dialect == "clickhouse" else "timestamp")
    if kind in FAMILIES:
        return SqlType(FAMILIES[kind])
    if kind in ENUMS:
        return SqlType("enum", detail=",".join(sorted(e.sql() for e in node.expressions)))
    if kind in RANGES:
        return SqlType("range", detail=kind.name.lower())
    if kind in GEOMETRIES:
        return SqlType("geometry", detail=node.sql(dialect=dialect).lower().replace(" ", ""))
    family = {DType.MAP: "map", DType.STRUCT: "struct", DType.HSTORE: "map"}.get(kind, "other")
    return SqlType(family, detail=node.sql(dialect=dialect).lower())


# --- classification of a type change -----------------------------------------------------------

TEXTUAL_FROM = {"integer", "float", "decimal", "boolean", "date", "time", "timestamp", "timestamptz"}
TEXTUAL_FROM |= {"interval", "json", "uuid", "enum", "network", "string", "xml", "range", "bits"}
TEXTUAL_FROM |= {"geometry", "opaque", "other"}  # every value has a text form (PostgreSQL: `::text`)


def classify(old: SqlType, new: SqlType) -> ChangeClass:
    """Widening keeps every old value (safe), narrowing may lose some, incompatible cannot convert.

    Two opaque types are the same only by name; a change between them is incompatible."""
    if old == new:
        return "same"
    if new.family == "string":
        if old.family == "string":
            by_limit = _by_limit(old.length, new.length)
            return "widening" if by_limit == "same" else by_limit  # text <-> citext: every value fits
        return "widening" if old.family in TEXTUAL_FROM and new.length is None else "narrowing"
    if old.family == "string":
        return "narrowing" if new.family == "enum" else "incompatible"
    return _classify_pairs(old, new)


def _by_limit(old: int | None, new: int | None) -> ChangeClass:
    """Larger (or unbounded) limits widen; smaller ones narrow."""
    if old == new:
        return "same"
    if new is None or (old is not None and new > old):
        return "widening"
    return "narrowing"


def _integer_digits(sql_type: SqlType) -> int:
    return DECIMAL_DIGITS_OF_INTEGER.get(sql_type.bits or 64, 78)


def _classify_pairs(old: SqlType, new: SqlType) -> ChangeClass:
    pair = (old.family, new.family)
    if pair == ("integer", "integer"):
        assert old.bits is not None and new.bits is not None
        if old.unsigned == new.unsigned or (old.unsigned and not new.unsigned):
            needed = old.bits + (1 if old.unsigned and not new.unsigned else 0)
            return "widening" if new.bits >= needed else "narrowing"
        return "narrowing"  # signed to unsigned loses negatives
    if pair == ("float", "float"):
        return "widening" if (new.bits or 64) >= (old.bits or 64) else "narrowing"
    if pair == ("integer", "float"):
        mantissa = 53 if new.bits == 64 else 24
        return "widening" if (old.bits or 64) < mantissa else "narrowing"
    if pair == ("integer", "decimal"):
        if new.precision is None:
            return "widening"
        return "widening" if new.precision - (new.scale or 0) >= _integer_digits(old) else "narrowing"
    if pair == ("decimal", "decimal"):
        if new.precision is None:
            return "widening"
        if old.precision is None:
            return "narrowing"
        integral_ok = new.precision - (new.scale or 0) >= old.precision - (old.scale or 0)
        return "widening" if integral_ok and (new.scale or 0) >= (old.scale or 0) else "narrowing"
    if pair in {("decimal", "float"), ("float", "decimal"), ("decimal", "integer"), ("float", "integer")}:
        return "narrowing"
    if pair == ("boolean", "integer"):
        return "widening"
    if pair == ("integer", "boolean"):
        return "narrowing"
    if pair in {("date", "timestamp"), ("date", "timestamptz"), ("timestamp", "timestamptz")}:
        return "widening"
    if pair in {("timestamp", "date"), ("timestamptz", "date"), ("timestamptz", "timestamp")}:
        return "narrowing"
    if pair in {("binary", "binary"), ("bits", "bits")}:
        by_limit = _by_limit(old.length, new.length)
        return "widening" if by_limit == "same" else by_limit  # bit(n) -> varbit(n)
    if pair == ("network", "network"):
        return "narrowing" if new.detail == "cidr" else "widening"  # every cidr is an inet
    if pair == ("array", "array"):
        assert old.element is not None and new.element is not None
        inner = classify(old.element, new.element)
        return "widening" if inner == "same" else inner
    if pair == ("enum", "enum"):
        old_values, new_values = set(old.detail.split(",")), set(new.detail.split(","))
        return "widening" if old_values <= new_values else "narrowing"
    if new.family == "json" and old.family in {"array", "map", "struct", "json"}:
        return "widening"
    return "incompatible"
