"""Suggested mappings: the SQL that carries a source column into the target after a drift.

Types are rendered by sqlglot in the target dialect and proved valid there by parsing a CAST of
them (once per type and dialect: cached); identifiers are quoted by the dialect's own rules. So
every expression is valid SQL in the target dialect by construction, and the tests parse them all
(and run the PostgreSQL ones).
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from aietl.services.drift.domain.schema import Column
from aietl.services.drift.domain.types import parse_type
from aietl.shared.events.schema import Dialect, SuggestedMapping


def _dialect(dialect: Dialect) -> str | None:
    return None if dialect == "generic" else dialect


@lru_cache(maxsize=8_192)
def _type_sql(type_string: str, source_dialect: Dialect, target_dialect: Dialect) -> str | None:
    """The type spelled for the target dialect, checked by parsing `CAST(NULL AS <type>)` there;
    None when it cannot be spelled there (a type only the source knows by name)."""
    parsed = parse_type(type_string, source_dialect)
    if parsed.node is not None:
        rendered = parsed.node.sql(dialect=_dialect(target_dialect))
    elif source_dialect == target_dialect:
        rendered = type_string
    else:
        return None
    try:
        sqlglot.parse_one(f"CAST(NULL AS {rendered})", read=_dialect(target_dialect))
    except (SqlglotError, ValueError, TypeError, RecursionError):
        return None
    return rendered


@lru_cache(maxsize=65_536)
def _identifier(name: str, dialect: Dialect) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect=_dialect(dialect))


def target_type_sql(column: Column, dialect: Dialect) -> str | None:
    """The column's type spelled for `dialect` (ClickHouse `Nullable(...)` wrappers kept as parsed)."""
    return _type_sql(column.type, column.dialect, dialect)


def cast_sql(source: str | None, column: Column, alias: str, dialect: Dialect) -> str:
    """`CAST(source AS type) AS alias`; a NULL source keeps a removed column's slot filled. A type
    that cannot be spelled in the dialect is not cast: `source AS alias`."""
    value = _identifier(source, dialect) if source else "NULL"
    type_sql = target_type_sql(column, dialect)
    cast = f"CAST({value} AS {type_sql})" if type_sql else value
    return f"{cast} AS {_identifier(alias, dialect)}"


def mapping(
    *,
    source: str | None,
    target: Column,
    alias: str,
    dialect: Dialect,
    auto_include: bool,
) -> SuggestedMapping:
    return SuggestedMapping(
        auto_include=auto_include,
        source_column=source,
        target_column=alias,
        target_type=target_type_sql(target, dialect),
        transformation_logic=cast_sql(source, target, alias, dialect),
        dialect=dialect,
    )
