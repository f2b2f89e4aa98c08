"""Type normalisation across SQL dialects and classification of type changes.

Type strings are parsed with sqlglot's `DataType` (never a hand-written table of strings); the
parsed type is reduced to a `SqlType`, a dialect-free description that two dialects agree on:
`int4` (PostgreSQL), `int` (MySQL) and `Int32` (ClickHouse) all become `int32`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from shared.events.schema import Dialect

ChangeClass = Literal["same", "widening", "narrowing", "incompatible"]
DType = exp.DataType.Type


class UnknownTypeError(ValueError):
    """A type string that no supported dialect understands."""

    def __init__(self, type_string: str, dialect: str, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(f"unknown type {type_string!r} for dialect {dialect}{detail}")
        self.type_string = type_string
        self.dialect = dialect


@dataclass(frozen=True, slots=True)
class SqlType:
    """A dialect-free type: family plus the parameters that decide whether a change loses data."""

    family: str
    bits: int | None = None  # integers and floats
    unsigned: bool = False
    precision: int | None = None  # decimals (None = unbounded)
    scale: int | None = None
    length: int | None = None  # strings and binaries (None = unbounded)
    element: SqlType | None = None  # arrays
    detail: str = ""  # enums, maps, structs, other: their canonical SQL

    @property
    def canonical(self) -> str:
        """A stable name; equal names mean the same type whatever the dialect."""
        if self.family == "integer":
            return f"{'u' if self.unsigned else ''}int{self.bits}"
        if self.family == "float":
            return f"float{self.bits}"
        if self.family == "decimal":
            return "decimal" if self.precision is None else f"decimal({self.precision},{self.scale or 0})"
        if self.family in ("string", "binary") and self.length is not None:
            return f"{self.family}({self.length})"
        if self.family == "array":
            assert self.element is not None
            return f"array<{self.element.canonical}>"
        if self.detail:
            return f"{self.family}:{self.detail}"
        return self.family


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
FLOAT_BITS = {DType.FLOAT: 32, DType.DOUBLE: 64}
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
}
ENUMS = {DType.ENUM, DType.ENUM8, DType.ENUM16, DType.SET}
WRAPPERS = {DType.LOWCARDINALITY}
DECIMAL_DIGITS_OF_INTEGER = {8: 3, 16: 5, 24: 8, 32: 10, 64: 19, 128: 39, 256: 78}


@dataclass(frozen=True, slots=True)
class ParsedType:
    """A parsed type string: the dialect-free type, whether the type itself says NULL is allowed
    (ClickHouse `Nullable(...)`), and the sqlglot node to render it in any dialect."""

    sql_type: SqlType
    nullable_wrapper: bool
    node: exp.DataType


def _sqlglot_dialect(dialect: str) -> str | None:
    return None if dialect == "generic" else dialect


@lru_cache(maxsize=8_192)
def parse_type(type_string: str, dialect: Dialect = "generic") -> ParsedType:
    """Parse and normalise one type string; `UnknownTypeError` names what was not understood."""
    text = type_string.strip()
    if not text:
        raise UnknownTypeError(type_string, dialect, "empty type")
    try:
        # Parsed as the target of a CAST so that trailing garbage (`int int`) is an error too.
        cast = sqlglot.parse_one(f"CAST(NULL AS {text})", read=_sqlglot_dialect(dialect))
    except (SqlglotError, ValueError, TypeError, RecursionError) as error:
        raise UnknownTypeError(type_string, dialect) from error
    node = cast.args.get("to") if isinstance(cast, exp.Cast) else None
    if not isinstance(node, exp.DataType):
        raise UnknownTypeError(type_string, dialect)
    nullable = bool(node.args.get("nullable")) or "nullable(" in text.lower()
    return ParsedType(_normalise(node, dialect, type_string), nullable, node)


def normalise(type_string: str, dialect: Dialect = "generic") -> SqlType:
    return parse_type(type_string, dialect).sql_type


def _int_param(node: exp.DataType, index: int) -> int | None:
    params = node.expressions
    if len(params) <= index:
        return None
    value = params[index]
    literal = value.this if isinstance(value, exp.DataTypeParam) else value
    text = literal.name if isinstance(literal, exp.Expression) else str(literal)
    return int(text) if text.isdigit() else None


def _normalise(node: exp.DataType, dialect: str, original: str) -> SqlType:
    kind = node.this
    if kind in WRAPPERS:
        inner = node.expressions[0] if node.expressions else None
        if not isinstance(inner, exp.DataType):
            raise UnknownTypeError(original, dialect, f"{kind.name} without an inner type")
        return _normalise(inner, dialect, original)
    if kind in (DType.USERDEFINED, DType.UNKNOWN):
        raise UnknownTypeError(original, dialect, "user-defined types are not supported")
    if kind in INTEGER_BITS:
        if dialect == "mysql" and kind == DType.TINYINT and _int_param(node, 0) == 1:
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
        return SqlType("boolean") if length in (None, 1) else SqlType("binary", length=length)
    if kind in (DType.DATETIME, DType.DATETIME64):
        # ClickHouse DateTime/DateTime64 store an instant (UTC epoch): timestamptz elsewhere.
        return SqlType("timestamptz" if dialect == "clickhouse" else "timestamp")
    if kind in FAMILIES:
        return SqlType(FAMILIES[kind])
    if kind == DType.ARRAY:
        inner = node.expressions[0] if node.expressions else None
        if not isinstance(inner, exp.DataType):
            raise UnknownTypeError(original, dialect, "array without an element type")
        return SqlType("array", element=_normalise(inner, dialect, original))
    if kind in ENUMS:
        return SqlType("enum", detail=",".join(sorted(e.sql() for e in node.expressions)))
    family = {DType.MAP: "map", DType.STRUCT: "struct"}.get(kind, "other")
    return SqlType(family, detail=node.sql().lower())


# --- classification of a type change -----------------------------------------------------------

TEXTUAL_FROM = {"integer", "float", "decimal", "boolean", "date", "time", "timestamp", "timestamptz"}
TEXTUAL_FROM |= {"interval", "json", "uuid", "enum", "network", "string"}


def classify(old: SqlType, new: SqlType) -> ChangeClass:
    """Widening keeps every old value (safe), narrowing may lose some, incompatible cannot convert."""
    if old == new:
        return "same"
    if new.family == "string":
        if old.family == "string":
            return _by_limit(old.length, new.length)
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
    if pair == ("binary", "binary"):
        return _by_limit(old.length, new.length)
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
