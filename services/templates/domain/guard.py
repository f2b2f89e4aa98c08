"""What a pipeline's SQL may touch, checked on the parsed statements before it is saved and before it runs.

Defence in depth behind the connection's own least-privileged credentials: whatever a template
renders, a run may only
- read its configured `source`, and read and write its configured `target`, the target's companion
  tables (`<target>__*` in the target's schema: tombstones, ClickHouse staging, the streaming
  pattern's Kafka table and view) and the session's temporary tables (`pg_temp`, SQLite `temp`);
- run the statements the patterns need (SELECT, INSERT, UPDATE, DELETE, MERGE, CREATE/DROP of
  tables, views and indexes, ALTER TABLE ... ADD COLUMN, TRUNCATE), never GRANT, SET, COPY,
  ATTACH, PRAGMA, SYSTEM, users, roles, databases, functions or anything sqlglot only sees as a
  command;
- call no table function but those the patterns use (PostgreSQL `jsonb_array_elements` for the
  streaming batch), no function that reads files, reaches the network or changes settings
  (`pg_read_file`, `lo_import`, `dblink`, `set_config`, `query_to_xml`, `load_extension`,
  `readfile`, ClickHouse `file`, `url`, `remote`, `s3`, ...), and create tables only with a
  storage engine that keeps its data inside the database (MergeTree family, Memory; Kafka for the
  streaming pattern) and change no setting but the few the patterns use (`join_use_nulls`,
  `allow_nullable_key`, the Kafka table's `kafka_*`, PostgreSQL `SET LOCAL work_mem` for the run's
  own transaction).

The check runs on a statement's *shape*: the parse of the statement with every quoted name
replaced by a numbered placeholder (`"\x00<n>"`), which the rendering caches per template. A
`Footprint` records what the shape touches in terms of those placeholders; checking a concrete
statement substitutes its own names, so a thousand pipelines of one template are parsed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from aietl.services.templates.domain.generation import table_ref
from aietl.services.templates.domain.model import SqlDialect, TemplateError

COMPANION_SEPARATOR = "__"
TEMPORARY_SCHEMAS: dict[str, frozenset[str]] = {
    "postgres": frozenset({"pg_temp"}),
    "sqlite": frozenset({"temp"}),
    "clickhouse": frozenset(),
}
TABLE_FUNCTIONS: dict[str, frozenset[str]] = {
    "postgres": frozenset({"jsonb_array_elements"}),
    "sqlite": frozenset(),
    "clickhouse": frozenset(),
}
FORBIDDEN_FUNCTIONS: dict[str, frozenset[str]] = {
    "postgres": frozenset(
        {
            "set_config",
            "current_setting",
            "query_to_xml",
            "query_to_xmlschema",
            "query_to_xml_and_xmlschema",
            "cursor_to_xml",
            "table_to_xml",
            "table_to_xmlschema",
            "table_to_xml_and_xmlschema",
            "schema_to_xml",
            "schema_to_xmlschema",
            "schema_to_xml_and_xmlschema",
            "database_to_xml",
            "database_to_xmlschema",
            "database_to_xml_and_xmlschema",
            "txid_current",
        }
    ),
    "sqlite": frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}),
    "clickhouse": frozenset(
        {
            "file",
            "url",
            "remote",
            "remotesecure",
            "getsetting",
            "getserversetting",
            "catboostevaluate",
            "evalmlmethod",
            "sleep",
            "sleepeachrow",
            "disk",
        }
    ),
}
FORBIDDEN_PREFIXES: dict[str, tuple[str, ...]] = {
    "postgres": ("pg_", "lo_", "dblink"),
    "sqlite": ("sqlite_",),
    "clickhouse": ("dict", "s3", "hdfs", "azure", "gcs", "mysql", "postgresql", "mongo", "jdbc", "odbc"),
}
ENGINES = ("MergeTree", "Memory")
SETTINGS = frozenset({"join_use_nulls", "allow_nullable_key"})
"""Query and table settings the patterns use (SETTINGS clauses); no other setting may be changed."""
STREAMING_SETTINGS = ("kafka_",)
TRANSACTION_SETTINGS: dict[str, frozenset[str]] = {
    "postgres": frozenset({"work_mem"}),
    "sqlite": frozenset(),
    "clickhouse": frozenset(),
}
"""Settings a script may change for its own transaction only (`SET LOCAL name = literal`): the SCD2
script's sort memory. They end with the run's transaction and grant nothing; any other SET is refused."""
STREAMING_ENGINES = ("Kafka",)
MODIFYING = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
)
READ_ONLY = "read"
WRITE = "write"


PLACEHOLDER = "\x00"


class Refused(TemplateError):
    """The code does something its pipeline has no business doing."""


@dataclass(frozen=True)
class Name:
    """A name in a statement's shape: the n-th quoted name of the statement, or literal template text."""

    placeholder: int | None
    text: str
    quoted: bool = True

    @classmethod
    def of(cls, node: Any) -> Name | None:
        if isinstance(node, exp.Identifier):
            text, quoted = str(node.this), bool(node.args.get("quoted"))
        elif isinstance(node, str) and node:
            text, quoted = node, False
        else:
            return None
        if text.startswith(PLACEHOLDER):
            return cls(int(text[1:]), "", True)
        return cls(None, text, quoted)

    def resolve(self, names: Sequence[str], dialect: str) -> str:
        if self.placeholder is not None:
            return _normal(names[self.placeholder], True, dialect)
        return _normal(self.text, self.quoted, dialect)


@dataclass(frozen=True)
class TableUse:
    schema: Name | None
    name: Name
    written: bool


@dataclass(frozen=True)
class Footprint:
    """What one statement shape does: problems whatever the names, and the names it uses where."""

    problems: tuple[str, ...] = ()
    tables: tuple[TableUse, ...] = ()
    ctes: tuple[Name, ...] = ()
    functions: tuple[Name, ...] = ()
    table_functions: tuple[tuple[Name, bool], ...] = ()
    engines: tuple[Name, ...] = ()
    settings: tuple[Name, ...] = ()


@dataclass(frozen=True)
class Scope:
    """The tables a pipeline may touch, normalised for its dialect."""

    dialect: SqlDialect
    source: tuple[str | None, str] | None
    target: tuple[str | None, str] | None
    streaming: bool = False

    @classmethod
    def of(
        cls,
        dialect: SqlDialect,
        config: dict[str, Any],
        pattern: str,
        variables: Mapping[str, Any] | None = None,
    ) -> Scope:
        """The config's `source`/`target` tables; without them, the template's `source_table`/
        `target_table` names (`schema.table` or `table`), which the specification's templates use."""
        named = variables or {}

        def table(side: str) -> tuple[str | None, str] | None:
            return _configured(config.get(side), dialect) or _configured(
                _named(named.get(f"{side}_table")), dialect
            )

        return cls(dialect, table("source"), table("target"), streaming=pattern == "streaming")

    def access(self, schema: str | None, name: str) -> str | None:
        """What the pipeline may do with this table: write (target side), read (source), or nothing."""
        if schema in TEMPORARY_SCHEMAS[self.dialect]:
            return WRITE
        if self.target is not None:
            target_schema, target_name = self.target
            if schema == target_schema and (
                name == target_name or name.startswith(target_name + COMPANION_SEPARATOR)
            ):
                return WRITE
        if self.source is not None and (schema, name) == self.source:
            return READ_ONLY
        return None


def _normal(text: str, quoted: bool, dialect: str) -> str:
    """How the database resolves a name: SQLite ignores case, PostgreSQL folds unquoted names."""
    if dialect == "sqlite" or (dialect == "postgres" and not quoted):
        return text.lower()
    return text


def _named(name: Any) -> dict[str, str] | None:
    """A `schema.table` name as a template writes it into SQL, split as the database reads it."""
    return table_ref(name) if isinstance(name, str) else None


def _configured(table: Any, dialect: str) -> tuple[str | None, str] | None:
    """The config's `{"schema", "name"}` as the rendered SQL names it (quoted by `qualified`)."""
    if isinstance(table, str):
        table = {"name": table}
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        return None
    schema = table.get("schema")
    return (
        _normal(schema, True, dialect) if isinstance(schema, str) else None,
        _normal(table["name"], True, dialect),
    )


def footprint(statement: exp.Expr, dialect: str) -> Footprint:
    """What a parsed statement shape does (see the module docstring)."""
    written = _written_tables(statement)
    tables: list[TableUse] = []
    table_functions: list[tuple[Name, bool]] = []
    problems = [*_kind_problems(statement, dialect), *_target_problems(statement)]
    for table in statement.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier):
            if table.args.get("catalog") is not None:
                problems.append(f"names another database ({table.sql(dialect)})")
                continue
            name = Name.of(table.this)
            if name is not None:
                tables.append(TableUse(Name.of(table.args.get("db")), name, table in written))
        else:
            function = _function_name(table.this)
            if function is None:
                problems.append("reads from something that is not a table")
            else:
                table_functions.append((function, table in written))
    settings = [*(statement.args.get("settings") or [])]
    settings += [item for prop in statement.find_all(exp.SettingsProperty) for item in prop.expressions]
    functions = [
        name
        for function in statement.find_all(exp.Func)
        if not isinstance(function.parent, exp.Table) or function.parent.this is not function
        if (name := _function_name(function)) is not None
    ]
    engines = [
        name
        for engine in statement.find_all(exp.EngineProperty)
        if (name := _engine_name(engine)) is not None
    ]
    ctes = [
        name
        for cte in statement.find_all(exp.CTE)
        if cte.args.get("alias") is not None and (name := Name.of(cte.args["alias"].this)) is not None
    ]
    setting_names = [
        name
        for item in settings
        if (name := Name.of(item.this.this if isinstance(item.this, exp.Column) else item.this)) is not None
    ]
    return Footprint(
        tuple(problems),
        tuple(tables),
        tuple(ctes),
        tuple(functions),
        tuple(table_functions),
        tuple(engines),
        tuple(setting_names),
    )


def refusals(footprint: Footprint, names: Sequence[str], scope: Scope) -> list[str]:
    """Every reason this statement (its shape's footprint with its own names) leaves the scope."""
    dialect = scope.dialect
    problems = list(footprint.problems)
    ctes = {cte.resolve(names, dialect) for cte in footprint.ctes}
    for use in footprint.tables:
        name = use.name.resolve(names, dialect)
        schema = use.schema.resolve(names, dialect) if use.schema is not None else None
        if schema is None and name in ctes:
            continue
        access = scope.access(schema, name)
        shown = f"{schema}.{name}" if schema is not None else name
        if access is None:
            problems.append(f"touches {shown}, which is neither the configured source nor the target")
        elif use.written and access != WRITE:
            problems.append(f"writes {shown}, but only the target (and its companions) may be written")
    for function, written in footprint.table_functions:
        text = function.resolve(names, dialect)
        if written or text.lower() not in TABLE_FUNCTIONS[dialect]:
            problems.append(f"reads from {text}(), which a pipeline may not use")
    for function in footprint.functions:
        text = function.resolve(names, dialect)
        lowered = text.lower()
        if lowered in FORBIDDEN_FUNCTIONS[dialect] or lowered.startswith(FORBIDDEN_PREFIXES[dialect]):
            problems.append(f"calls {text}(), which a pipeline may not use")
    for setting in footprint.settings:
        text = setting.resolve(names, dialect)
        if not (text in SETTINGS or (scope.streaming and text.startswith(STREAMING_SETTINGS))):
            problems.append(f"sets {text}, which a pipeline may not change")
    for engine in footprint.engines:
        text = engine.resolve(names, dialect)
        if not (text.endswith(ENGINES) or (scope.streaming and text in STREAMING_ENGINES)):
            problems.append(f"creates a table with ENGINE = {text}, which keeps data outside the database")
    return problems


def _kind_problems(statement: exp.Expr, dialect: str) -> Iterable[str]:
    if isinstance(
        statement, exp.Query | exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.TruncateTable
    ):
        return
    if isinstance(statement, exp.Set) and _transaction_local(statement, dialect):
        return
    if isinstance(statement, exp.Create | exp.Drop):
        kind = str(statement.args.get("kind") or "").upper()
        if kind not in {"TABLE", "VIEW", "INDEX"}:
            yield f"{type(statement).__name__.upper()} {kind or '?'} is not a statement a pipeline needs"
        return
    if isinstance(statement, exp.Alter):
        kind = str(statement.args.get("kind") or "TABLE").upper()
        actions = statement.args.get("actions") or []
        if kind != "TABLE" or not actions or not all(isinstance(a, exp.ColumnDef) for a in actions):
            yield "ALTER is only allowed to add columns to a table"
        return
    yield f"{type(statement).__name__.upper()} is not a statement a pipeline needs"


def _transaction_local(statement: exp.Set, dialect: str) -> bool:
    """`SET LOCAL` of settings in `TRANSACTION_SETTINGS` (named unquoted) to literals, nothing else."""
    items = statement.expressions
    return bool(items) and all(
        isinstance(item, exp.SetItem)
        and str(item.args.get("kind") or "").upper() == "LOCAL"
        and isinstance(item.this, exp.EQ)
        and isinstance(item.this.this, exp.Column)
        and item.this.this.name.lower() in TRANSACTION_SETTINGS[dialect]
        and isinstance(item.this.expression, exp.Literal)
        for item in items
    )


def _written_tables(statement: exp.Expr) -> set[exp.Table]:
    """The tables a statement creates, changes or drops, wherever in it (the rest it only reads)."""
    targets: list[Any] = [node.this for node in statement.find_all(*MODIFYING)]
    if isinstance(statement, exp.Drop | exp.TruncateTable):
        targets.extend(statement.expressions)
    if isinstance(statement.this, exp.Index):
        targets.append(statement.this.args.get("table"))
    targets.extend(node.this for node in statement.find_all(exp.Into, exp.ToTableProperty))
    return {table for target in targets if (table := _table_of(target)) is not None}


def _table_of(target: Any) -> exp.Table | None:
    if isinstance(target, exp.Schema):
        target = target.this
    return target if isinstance(target, exp.Table) else None


def _target_problems(statement: exp.Expr) -> Iterable[str]:
    """INSERT INTO FUNCTION and the like: what a statement modifies must be a table."""
    for node in statement.find_all(*MODIFYING):
        if isinstance(node.this, exp.Index) or node.this is None:
            continue
        if _table_of(node.this) is None:
            yield f"{type(node).__name__.upper()} does not name a table"


def _function_name(function: Any) -> Name | None:
    if isinstance(function, exp.Anonymous):
        return Name.of(function.this)
    if isinstance(function, exp.Func):
        return Name(None, function.sql_name(), quoted=True)
    return None


def _engine_name(engine: exp.EngineProperty) -> Name | None:
    value = engine.this
    if isinstance(value, exp.Anonymous):
        return Name.of(value.this)
    if isinstance(value, exp.Expression):
        return Name.of(value.this if isinstance(value.this, exp.Identifier) else value.name)
    return Name.of(str(value))


def check(problems: Sequence[str]) -> None:
    if problems:
        raise Refused("; ".join(problems[:10]))
