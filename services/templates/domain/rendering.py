"""Rendering pipeline code safely: a sandboxed Jinja2 environment and SQL quoting filters.

Configs come from users, so every value that lands in SQL goes through a filter that quotes it
with sqlglot for the template's dialect (`ident`, `qualified`, `literal`, `sqltype`, `number`),
and templates run in Jinja2's immutable sandbox with strict undefined variables: no attribute
starting with `_`, no mutation of inputs, no Python globals beyond `range` and `namespace`.
Every rendered statement must parse in its dialect; a statement sqlglot only understands as an
opaque command is rejected too.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import sqlglot
from jinja2 import StrictUndefined, Undefined, UndefinedError, nodes, pass_context
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.loaders import FunctionLoader
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.utils import Namespace
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError

from aietl.services.templates.domain.guard import PLACEHOLDER, Footprint, Scope, footprint, refusals
from aietl.services.templates.domain.model import ConfigProblem, InvalidConfig, SqlDialect, TemplateError
from aietl.shared.bounded import LimitExceeded, bounded_binop

MAX_RENDERED_CHARS = 2_000_000
_SQLGLOT_DIALECT = {"postgres": "postgres", "clickhouse": "clickhouse", "sqlite": "sqlite"}


class UnsafeValue(ValueError):
    """A config value cannot become the SQL element a filter was asked for."""


@dataclass(frozen=True)
class Statement:
    sql: str
    returns_rows: bool
    uses_batch: bool = False
    """References `$1`: the batch of messages a streaming run consumed, as a JSON array."""
    names: tuple[str, ...] = ()
    """The statement's quoted names in order: what the placeholders of its shape stand for."""
    footprint: Footprint = field(default_factory=Footprint)
    """What the statement's shape touches (see `guard`)."""


@dataclass(frozen=True)
class Rendered:
    code: str
    statements: tuple[Statement, ...]


def _dialect(context: Context) -> str:
    return _SQLGLOT_DIALECT[context["dialect"]]


def _defined(value: Any) -> Any:
    """A missing config value fails as undefined (a config problem), not as a bad value."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _identifier_text(value: Any) -> str:
    value = _defined(value)
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 255:
        raise UnsafeValue(f"{value!r} is not a usable identifier")
    return value


@lru_cache(maxsize=65_536)
def _quoted_identifier(text: str, dialect: str) -> str:
    return exp.to_identifier(text, quoted=True).sql(dialect)


@lru_cache(maxsize=65_536)
def _quoted_string(text: str, dialect: str) -> str:
    return exp.Literal.string(text).sql(dialect)


@pass_context
def ident(context: Context, value: Any) -> str:
    """A quoted identifier: whatever the text, it names one column or table."""
    return _quoted_identifier(_identifier_text(value), _dialect(context))


@pass_context
def qualified(context: Context, table: Any) -> str:
    """`{"schema": s, "name": t}` (schema optional) or a bare name, as a quoted qualified table."""
    table = _defined(table)
    if isinstance(table, str):
        return ident(context, table)
    if not hasattr(table, "get"):
        raise UnsafeValue(f"{table!r} is not a table reference")
    parts = [table.get("schema"), table.get("name")]
    return ".".join(ident(context, part) for part in parts if part is not None)


def quoted_table(table: dict[str, Any], dialect: SqlDialect) -> str:
    """`{"schema", "name"}` as a quoted, qualified name (outside templates, e.g. a connection probe)."""
    parts = [table.get("schema"), table.get("name")]
    return ".".join(
        _quoted_identifier(_identifier_text(part), _SQLGLOT_DIALECT[dialect]) for part in parts if part
    )


@pass_context
def literal(context: Context, value: Any) -> str:
    """A SQL literal: strings quoted and escaped for the dialect, numbers checked, booleans, NULL."""
    value = _defined(value)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise UnsafeValue("string literal contains NUL")
        return _quoted_string(value, _dialect(context))
    raise UnsafeValue(f"{type(value).__name__} cannot be a SQL literal")


def number(value: Any) -> str:
    """A finite number rendered as digits only."""
    value = _defined(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UnsafeValue(f"{value!r} is not a finite number")
    return repr(value) if isinstance(value, float) else str(int(value))


@pass_context
def sqltype(context: Context, value: Any) -> str:
    """A data type, accepted only if sqlglot parses it as a type of the dialect."""
    value = _defined(value)
    if not isinstance(value, str) or not value.strip():
        raise UnsafeValue(f"{value!r} is not a data type")
    dialect = _dialect(context)
    try:
        cast = sqlglot.parse_one(f"CAST(NULL AS {value})", read=dialect, error_level=ErrorLevel.RAISE)
    except SqlglotError as error:
        raise UnsafeValue(f"{value!r} is not a {dialect} data type") from error
    if not isinstance(cast, exp.Cast):
        raise UnsafeValue(f"{value!r} is not a {dialect} data type")
    data_type = cast.to
    return data_type.sql(dialect)


def _load_library(name: str) -> str | None:
    """Templates may import the shared macro library shipped with the package (`lib/*.j2`)."""
    if not name.startswith("lib/") or ".." in name:
        return None
    resource = resources.files("aietl.services.templates.builtin").joinpath(name)
    return resource.read_text() if resource.is_file() else None


class _BoundedConcatenation(CodeGenerator):
    """Compiles `a ~ b` to a call of the environment's `concat`, which refuses oversized results."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `+`, `*`, `**`, `%` and `~` unable to build huge values.

    Methods and filters that grow strings (`center`, `replace`, format widths, ...) are bounded by
    the render child's memory cap and deadline instead (`aietl.services.templates.renderer`).
    """

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    code_generator_class = _BoundedConcatenation

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return bounded_binop(operator, left, right)

    def concat(self, parts: Iterable[Any]) -> str:
        texts = [str(part) for part in parts]
        if sum(map(len, texts)) > MAX_RENDERED_CHARS:
            raise LimitExceeded(f"a string longer than {MAX_RENDERED_CHARS} characters")
        return "".join(texts)


def _environment() -> ImmutableSandboxedEnvironment:
    env = _BoundedSandbox(
        loader=FunctionLoader(_load_library),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.clear()
    env.globals.update({"range": safe_range, "namespace": Namespace})
    env.filters.update(
        {"ident": ident, "qualified": qualified, "literal": literal, "sqltype": sqltype, "number": number}
    )
    return env


_ENV = _environment()


@lru_cache(maxsize=256)
def _compiled(code: str) -> Any:
    return _ENV.from_string(code)


def column_sources(config: dict[str, Any]) -> dict[str, Any]:
    """`sources[name]`: the source column of each mapped target column (built-in config shape)."""
    columns = config.get("columns")
    if not isinstance(columns, list):
        return {}
    return {
        column["name"]: column.get("source", column["name"])
        for column in columns
        if isinstance(column, dict) and isinstance(column.get("name"), str)
    }


def compile_template(code: str) -> None:
    """Fail early on a template that does not compile in the sandbox."""
    try:
        _compiled(code)
    except JinjaTemplateError as error:
        raise TemplateError(f"template does not compile: {error}") from error


def render(
    code: str, dialect: SqlDialect, config: dict[str, Any], variables: Mapping[str, Any] | None = None
) -> Rendered:
    """Render `code` for `config` and check that every statement parses in `dialect`.

    Templates see `dialect`, `config` and `sources` (target column name -> source column name),
    and `variables` as further top-level names (never replacing those three).
    """
    context = {**(variables or {}), "dialect": dialect, "config": config, "sources": column_sources(config)}
    try:
        text = _bounded_text(_compiled(code), context)
    except SecurityError as error:
        raise TemplateError(f"template violates the sandbox: {error}") from error
    except UndefinedError as error:
        raise InvalidConfig(
            [ConfigProblem("", f"template needs a value the config lacks: {error}")]
        ) from error
    except LimitExceeded as error:
        raise TemplateError(f"template would build {error}") from error
    except UnsafeValue as error:
        raise InvalidConfig([ConfigProblem("", str(error))]) from error
    except JinjaTemplateError as error:
        raise TemplateError(f"template failed to render: {error}") from error
    except MemoryError:
        raise TemplateError("template needs more memory than a render may use") from None
    except RecursionError:
        raise TemplateError("template recurses too deeply") from None
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as error:
        raise TemplateError(f"template failed to render: {type(error).__name__}: {error}") from error
    return Rendered(code=text, statements=tuple(parse_statements(text, dialect)))


def _bounded_text(template: Any, context: Mapping[str, Any]) -> str:
    """The rendered text, given up as soon as it grows past `MAX_RENDERED_CHARS`."""
    parts, size = [], 0
    for part in template.generate(context):
        size += len(part)
        if size > MAX_RENDERED_CHARS:
            raise TemplateError(f"rendered code exceeds {MAX_RENDERED_CHARS} characters")
        parts.append(part)
    return "".join(parts)


# Quoted names, strings and comments as the dialects' generators write them; they never decide how
# a statement parses, so statements that differ only inside them parse alike (the skeleton cache).
_ATOMS = {
    "postgres": r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"",
    "sqlite": r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"",
    "clickhouse": r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`\\]|\\.|``)*`",
}
_SCANNERS = {
    dialect: re.compile(rf"(?P<atom>{atoms})|(?P<comment>--[^\n]*|/\*.*?\*/)|(?P<end>;)", re.DOTALL)
    for dialect, atoms in _ATOMS.items()
}


def parse_statements(text: str, dialect: SqlDialect) -> list[Statement]:
    """Split on top-level semicolons and check that each statement parses in `dialect`.

    Parsing is the costly part of rendering, so results are cached by the statement's shape
    (quoted names replaced by numbered placeholders, strings by one placeholder): generating
    hundreds of pipelines from one template parses its statements once.
    """
    statements: list[Statement] = []
    for sql, shape, names in _split(text, dialect):
        verdict = _parsed_shape(shape, dialect)
        if isinstance(verdict, str):
            raise TemplateError(f"statement {sql[:120]!r} {verdict}")
        returns_rows, uses_batch, shape_footprint = verdict
        statements.append(Statement(sql, returns_rows, uses_batch, names, shape_footprint))
    if not statements:
        raise TemplateError("rendered code contains no SQL statement")
    return statements


def scope_refusals(statements: Sequence[Statement], scope: Scope) -> list[str]:
    """Why these statements may not run for a pipeline with this scope (empty when they may)."""
    return [
        f"statement {statement.sql[:80]!r} {problem}"
        for statement in statements
        for problem in refusals(statement.footprint, statement.names, scope)
    ]


def _split(text: str, dialect: SqlDialect) -> list[tuple[str, str, tuple[str, ...]]]:
    pieces: list[tuple[str, str, tuple[str, ...]]] = []
    start = 0
    shape: list[str] = []
    names: list[str] = []
    cursor = 0
    for match in _SCANNERS[dialect].finditer(text):
        shape.append(text[cursor : match.start()])
        cursor = match.end()
        if match.lastgroup == "atom":
            atom = match.group()
            if atom.startswith("'"):
                shape.append("'s'")
            else:
                shape.append(f'"{PLACEHOLDER}{len(names)}"')
                names.append(_unquoted(atom, dialect))
        elif match.lastgroup == "comment":
            shape.append(" ")
        else:
            _keep(pieces, text[start : match.start()], "".join(shape), names)
            start, shape, names = match.end(), [], []
    shape.append(text[cursor:])
    _keep(pieces, text[start:], "".join(shape), names)
    return pieces


def _unquoted(atom: str, dialect: str) -> str:
    quote, inner = atom[0], atom[1:-1]
    if dialect == "clickhouse":
        inner = re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL)
    return inner.replace(quote * 2, quote)


def _keep(pieces: list[tuple[str, str, tuple[str, ...]]], sql: str, shape: str, names: list[str]) -> None:
    if shape.strip():
        pieces.append((sql.strip(), " ".join(shape.split()), tuple(names)))


@lru_cache(maxsize=8_192)
def _parsed_shape(shape: str, dialect: str) -> tuple[bool, bool, Footprint] | str:
    """(returns rows, uses the batch parameter, footprint) when it parses; else why it does not."""
    read = _SQLGLOT_DIALECT[dialect]
    try:
        expression = sqlglot.parse_one(shape, read=read, error_level=ErrorLevel.RAISE)
    except (ParseError, SqlglotError) as error:
        return f"does not parse as {read}: {error}"
    if isinstance(expression, exp.Command):
        return f"is not SQL sqlglot understands as {read}"
    uses_batch = expression.find(exp.Parameter, exp.Placeholder) is not None
    return isinstance(expression, exp.Query), uses_batch, footprint(expression, read)


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
