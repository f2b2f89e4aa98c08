"""Build the corpus of real schema changes, tests/data/drift_history.jsonl, from migration histories.

    python -m tests.drift.history_build /work/.mirror            # every project found there
    python -m tests.drift.history_build DIR --projects a/b,c/d  # some of them

Each project is a git directory `DIR/<owner>+<name>/repo` (a bare clone or the `fetch` tool's
snapshot) read at its HEAD; nothing of it is executed or copied. Its migrations (Django
`RenameField`/`AlterField`/`AddField`/`RemoveField`/..., Rails `rename_column`/`change_column`/
`add_column`/`remove_column`/..., Alembic `op.alter_column(new_column_name=...)`/...) are replayed
in order onto column lists, and every migration that changes a table that existed before it
becomes one case: the table's columns before and after (PostgreSQL types, as the framework's
PostgreSQL backend creates them) and the drifts the migration's own operations make, labelled by
following each column's identity through them (a rename keeps it, a drop and an add do not).
Only these extracted facts are stored. saleor/saleor is refused: it is kept aside for evaluation.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

OUT = Path(__file__).parents[1] / "data" / "drift_history.jsonl.gz"  # 13 MB as text
HELD_OUT = {"saleor/saleor"}
MAX_CASES_PER_PROJECT = 400  # so that no single project outweighs the others


# --- the replay ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    """A column being followed through a history; `ident` survives renames, not drop + add."""

    ident: int
    name: str
    type: str
    nullable: bool = True
    pk: bool = False


@dataclass
class Replay:
    """Column lists of every table, changed operation by operation; one case per changed table
    and migration. A table whose state became uncertain (an operation the parser does not follow)
    is forgotten, so that no case is made from a guess."""

    project: str
    source: str
    tables: dict[str, list[Col]] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    _next_ident: int = 0
    _before: dict[str, list[Col] | None] = field(default_factory=dict)
    _migration: str = ""

    def column(self, name: str, type_: str, nullable: bool = True, pk: bool = False) -> Col:
        self._next_ident += 1
        return Col(self._next_ident, name, type_, nullable and not pk, pk)

    def has_column(self, table: str, name: str) -> bool | None:
        columns = self.tables.get(table)
        return None if columns is None else any(c.name == name for c in columns)

    def begin(self, migration: str) -> None:
        self._migration, self._before = migration, {}

    def _touch(self, table: str) -> None:
        if table not in self._before:
            columns = self.tables.get(table)
            self._before[table] = list(columns) if columns is not None else None

    def forget(self, table: str) -> None:
        self._touch(table)
        self.tables.pop(table, None)

    def create_table(self, table: str, columns: list[Col]) -> None:
        self._touch(table)
        self.tables[table] = _unique(columns)

    def drop_table(self, table: str) -> None:
        self.forget(table)

    def rename_table(self, old: str, new: str) -> None:
        columns = self.tables.get(old)
        self.forget(old)
        self.forget(new)
        if columns is not None:
            self.tables[new] = columns
            self._before[new] = None  # a renamed table is not a column change: no case

    def add_column(self, table: str, column: Col) -> None:
        self._touch(table)
        columns = self.tables.get(table)
        if columns is None:
            return
        if any(c.name == column.name for c in columns):
            self.forget(table)
            return
        columns.append(column)

    def remove_column(self, table: str, name: str) -> None:
        self._touch(table)
        columns = self.tables.get(table)
        if columns is None:
            return
        if not any(c.name == name for c in columns):
            self.forget(table)
            return
        self.tables[table] = [c for c in columns if c.name != name]

    def change_column(self, table: str, column: str, **changes: Any) -> None:
        """Rename (`name=`), retype (`type=`), change nullability or key; `None` values keep."""
        self._touch(table)
        columns = self.tables.get(table)
        if columns is None:
            return
        changes = {k: v for k, v in changes.items() if v is not None}
        index = next((i for i, c in enumerate(columns) if c.name == column), None)
        new_name = changes.get("name", column)
        clash = new_name != column and any(c.name == new_name for c in columns)
        if index is None or clash:
            self.forget(table)
            return
        updated = replace(columns[index], **changes)
        columns[index] = replace(updated, nullable=updated.nullable and not updated.pk)

    def end(self) -> None:
        for table, before in self._before.items():
            after = self.tables.get(table)
            if before is None or after is None or not before:
                continue
            self.cases.append(
                {
                    "id": f"{self.project}:{self._migration}:{table}",
                    "project": self.project,
                    "source": self.source,
                    "migration": self._migration,
                    "table": table,
                    "before": {"dialect": "postgres", "columns": [_stored(c) for c in before]},
                    "after": {"dialect": "postgres", "columns": [_stored(c) for c in after]},
                    "expected": _labels(before, after),
                }
            )
        self._before = {}


def _unique(columns: list[Col]) -> list[Col]:
    seen: set[str] = set()
    return [c for c in columns if not (c.name in seen or seen.add(c.name))]  # type: ignore[func-returns-value]


def _stored(column: Col) -> dict[str, Any]:
    """The column as `schema.observed` carries it (defaults left out: nullable, not a key)."""
    stored: dict[str, Any] = {"name": column.name, "type": column.type}
    if not column.nullable:
        stored["nullable"] = False
    if column.pk:
        stored["primary_key"] = True
    return stored


def _labels(before: list[Col], after: list[Col]) -> list[dict[str, Any]]:
    """The drifts the operations made, by column identity (not by comparing names)."""
    old = {c.ident: c for c in before}
    new = {c.ident: c for c in after}
    out: list[dict[str, Any]] = []
    for ident, column in new.items():
        was = old.get(ident)
        if was is None:
            out.append({"drift_type": "new_column", "column_name": column.name})
            continue
        if was.name != column.name:
            out.append(
                {"drift_type": "renamed_column", "column_name": column.name, "previous_name": was.name}
            )
        if _type_key(was.type) != _type_key(column.type):
            out.append({"drift_type": "type_change", "column_name": column.name})
        if was.nullable != column.nullable:
            out.append({"drift_type": "nullability_change", "column_name": column.name})
        if was.pk != column.pk:
            out.append({"drift_type": "primary_key_change", "column_name": column.name})
    out += [{"drift_type": "removed_column", "column_name": c.name} for i, c in old.items() if i not in new]
    return out


SAME_TYPE = {"character varying": "text", "mediumtext": "text", "longtext": "text", "int": "integer"}


def _type_key(type_: str) -> str:
    """Spellings one database type has in the frameworks (an unbounded varchar is a text)."""
    return SAME_TYPE.get(type_, type_)


def _consistent(case: dict[str, Any]) -> bool:
    """A name both dropped and added in one migration (drop + re-add) reads as one column in any
    schema comparison; such cases say nothing about renames and are left out."""
    before = {c["name"] for c in case["before"]["columns"]}
    after = {c["name"] for c in case["after"]["columns"]}
    kinds = {(e["drift_type"], e["column_name"]) for e in case["expected"]}
    return not any(
        (t == "new_column" and n in before) or (t == "removed_column" and n in after) for t, n in kinds
    )


# --- reading a git directory ----------------------------------------------------------------------


@dataclass
class Repo:
    git_dir: Path

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir), *args], capture_output=True, text=True, check=True
        ).stdout

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").strip()

    def files(self) -> list[str]:
        return self._git("ls-tree", "-r", "--name-only", "HEAD").splitlines()

    def read(self, path: str) -> str:
        return self._git("show", f"HEAD:{path}")


def _skipped(path: str) -> bool:
    parts = path.split("/")
    return any(p in {"test", "tests", "spec", "testapp", "sandbox", "example", "examples"} for p in parts)


# --- Django --------------------------------------------------------------------------------------

DJANGO_TYPES = {  # field class -> PostgreSQL type, as Django's postgresql backend creates it
    "AutoField": "integer", "BigAutoField": "bigint", "SmallAutoField": "smallint",
    "BinaryField": "bytea", "BooleanField": "boolean", "NullBooleanField": "boolean",
    "DateField": "date", "DateTimeField": "timestamp with time zone", "DurationField": "interval",
    "FloatField": "double precision", "IntegerField": "integer", "BigIntegerField": "bigint",
    "IPAddressField": "inet", "GenericIPAddressField": "inet", "JSONField": "jsonb",
    "PositiveIntegerField": "integer", "PositiveBigIntegerField": "bigint",
    "PositiveSmallIntegerField": "smallint", "SmallIntegerField": "smallint", "TextField": "text",
    "TimeField": "time", "UUIDField": "uuid", "HStoreField": "hstore", "CICharField": "citext",
    "CIEmailField": "citext", "CITextField": "citext", "SearchVectorField": "tsvector",
    "DateTimeRangeField": "tstzrange", "DateRangeField": "daterange", "IntegerRangeField": "int4range",
    "BigIntegerRangeField": "int8range", "DecimalRangeField": "numrange", "RichTextField": "text",
    "StreamField": "jsonb", "MarkdownField": "text", "PickledObjectField": "text",
}  # fmt: skip
DJANGO_LENGTHS = {  # fields stored as varchar, with their default max_length
    "CharField": 255, "EmailField": 254, "URLField": 200, "SlugField": 50, "FileField": 100,
    "ImageField": 100, "FilePathField": 100, "CommaSeparatedIntegerField": 255, "CountryField": 2,
    "PhoneNumberField": 128, "AutoSlugField": 50, "ColorField": 18, "TimeZoneField": 63,
    "LanguageField": 10, "CurrencyField": 3, "PasswordField": 255,
}  # fmt: skip
RELATIONS = ("ForeignKey", "OneToOneField", "ParentalKey", "TreeForeignKey", "TreeOneToOneField")
NO_COLUMN = ("ManyToManyField", "ParentalManyToManyField", "TaggableManager", "GenericRelation")


def _call_name(node: ast.AST) -> str:
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _literal(node: ast.AST | None, default: Any = None) -> Any:
    if node is None:
        return default
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return default


def _kwargs(call: ast.Call) -> dict[str, ast.AST]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _arg(call: ast.Call, index: int, name: str) -> ast.AST | None:
    keywords = _kwargs(call)
    if name in keywords:
        return keywords[name]
    return call.args[index] if len(call.args) > index else None


@dataclass
class DjangoField:
    column: str | None  # None: no column of its own (many-to-many)
    type: str
    nullable: bool
    pk: bool


def _django_type(call: ast.Call, kind: str, pk_types: dict[str, str], app: str) -> str | None:
    keywords = _kwargs(call)
    if kind.endswith(RELATIONS) or "on_delete" in keywords:
        target = _literal(_arg(call, 0, "to"), "")
        target = target if isinstance(target, str) else ""
        label = target.lower() if "." in target else f"{app}.{target.lower()}"
        return pk_types.get(label, "integer")
    if kind in DJANGO_TYPES:
        return DJANGO_TYPES[kind]
    if kind == "DecimalField":
        digits, places = _literal(keywords.get("max_digits"), 10), _literal(keywords.get("decimal_places"), 2)
        if isinstance(digits, int) and isinstance(places, int):
            return f"numeric({digits}, {places})"
        return "numeric"
    if kind in DJANGO_LENGTHS:
        length = _literal(keywords.get("max_length"), DJANGO_LENGTHS[kind])
        return f"varchar({length})" if isinstance(length, int) else "varchar"
    if kind == "ArrayField":
        base = _arg(call, 0, "base_field")
        if isinstance(base, ast.Call):
            inner = _django_type(base, _call_name(base), pk_types, app)
            return f"{inner}[]" if inner else None
        return None
    for suffix, spelled in (("CharField", "varchar(255)"), ("TextField", "text"), ("JSONField", "jsonb")):
        if kind.endswith(suffix):
            length = _literal(keywords.get("max_length"), None)
            return f"varchar({length})" if suffix == "CharField" and isinstance(length, int) else spelled
    for suffix in ("AutoField", "IntegerField", "BooleanField", "DateTimeField", "DateField", "UUIDField"):
        if kind.endswith(suffix):
            return DJANGO_TYPES[suffix]
    # a project's own field class: what its arguments say it stores
    if "base_field" in keywords:
        return _django_type(call, "ArrayField", pk_types, app)
    length = _literal(keywords.get("max_length"), None)
    return f"varchar({length})" if isinstance(length, int) else "text"


def _django_field(name: str, call: ast.AST | None, pk_types: dict[str, str], app: str) -> DjangoField | None:
    if not isinstance(call, ast.Call):
        return None
    kind = _call_name(call)
    if kind in NO_COLUMN or kind.endswith("ManyToManyField"):
        return DjangoField(None, "", True, False)
    type_ = _django_type(call, kind, pk_types, app)
    if type_ is None:
        return None
    keywords = _kwargs(call)
    relation = kind.endswith(RELATIONS) or "on_delete" in keywords
    column = _literal(keywords.get("db_column"), None) or (f"{name}_id" if relation else name)
    null = bool(_literal(keywords.get("null"), kind == "NullBooleanField"))
    pk = bool(_literal(keywords.get("primary_key"), False)) or kind.endswith("AutoField")
    return DjangoField(column, type_, null, pk)


@dataclass
class DjangoModel:
    table: str
    fields: dict[str, DjangoField]  # field name -> its column


class DjangoHistory:
    """Django migrations of every app, each app in its numbered order."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.models: dict[str, DjangoModel] = {}  # "app.model" -> model
        self.pk_types: dict[str, str] = {}

    def migrations(self, repo: Repo) -> Iterator[tuple[str, str, ast.Module]]:
        paths = [p for p in repo.files() if re.search(r"/migrations/\d{4}_\w+\.py$", p) and not _skipped(p)]
        by_app: dict[str, list[str]] = {}
        for path in paths:
            by_app.setdefault(path.split("/migrations/")[0], []).append(path)
        parsed: dict[str, ast.Module] = {}
        for path in paths:
            try:
                parsed[path] = ast.parse(repo.read(path))
            except SyntaxError:
                continue
        for app_dir in sorted(by_app):
            app = app_dir.rsplit("/", 1)[-1]
            names = {Path(p).stem for p in by_app[app_dir]}
            for path in sorted(by_app[app_dir]):
                if path not in parsed:
                    continue
                squash = _replaces(parsed[path])
                if squash and all(n in names for n in squash):
                    continue  # the originals are all there: Django applies those
                yield app, path, parsed[path]

    def run(self, repo: Repo) -> None:
        for app, path, module in self.migrations(repo):
            operations = _operations(module)
            if operations is None:
                continue
            self.replay.begin(path)
            for operation in operations:
                self.apply(app, operation)
            self.replay.end()

    def _model(self, app: str, name: Any) -> DjangoModel | None:
        return self.models.get(f"{app}.{str(name).lower()}")

    def apply(self, app: str, op: ast.AST, uncertain: bool = False) -> None:
        if not isinstance(op, ast.Call):
            return
        kind, keywords = _call_name(op), _kwargs(op)
        if kind == "SeparateDatabaseAndState":
            for state_op in _literal_list(keywords.get("state_operations")):
                self.apply(app, state_op, uncertain=True)
            return
        name = _literal(_arg(op, 0, "name"), None)
        model_name = _literal(_arg(op, 0, "model_name"), None)
        if kind == "CreateModel" and isinstance(name, str):
            self._create(app, name, op)
        elif kind == "DeleteModel" and isinstance(name, str):
            model = self.models.pop(f"{app}.{name.lower()}", None)
            if model:
                self.replay.drop_table(model.table)
        elif kind == "RenameModel":
            old, new = _literal(_arg(op, 0, "old_name"), ""), _literal(_arg(op, 1, "new_name"), "")
            model = self.models.pop(f"{app}.{str(old).lower()}", None)
            if model and isinstance(new, str):
                default_old = f"{app}_{str(old).lower()}"
                if model.table == default_old:
                    new_table = f"{app}_{new.lower()}"
                    self.replay.rename_table(model.table, new_table)
                    model.table = new_table
                self.models[f"{app}.{new.lower()}"] = model
        elif kind == "AlterModelTable":
            model, table = self._model(app, name), _literal(_arg(op, 1, "table"), None)
            if model and isinstance(table, str):
                self.replay.rename_table(model.table, table)
                model.table = table
        elif kind in ("AddField", "RemoveField", "AlterField", "RenameField"):
            model = self._model(app, model_name)
            if model is None:
                return
            if uncertain:
                self.replay.forget(model.table)
                self.models.pop(f"{app}.{str(model_name).lower()}", None)
                return
            self._field_op(app, kind, model, op)

    def _create(self, app: str, name: str, op: ast.Call) -> None:
        keywords = _kwargs(op)
        options = _literal(keywords.get("options"), {}) or {}
        if not isinstance(options, dict) or options.get("proxy") or options.get("managed") is False:
            return
        table = options.get("db_table") or f"{app}_{name.lower()}"
        fields: dict[str, DjangoField] = {}
        columns: list[Col] = []
        for item in _literal_list(_arg(op, 1, "fields")):
            if not (isinstance(item, ast.Tuple) and len(item.elts) == 2):
                continue
            field_name = _literal(item.elts[0], None)
            spec = _django_field(str(field_name), item.elts[1], self.pk_types, app)
            if spec is None:
                return  # a field the parser does not know: the table is not followed
            fields[str(field_name)] = spec
            if spec.column:
                columns.append(self.replay.column(spec.column, spec.type, spec.nullable, spec.pk))
        if not any(c.pk for c in columns):
            fields["id"] = DjangoField("id", "integer", False, True)
            columns.insert(0, self.replay.column("id", "integer", False, True))
        key = next(c for c in columns if c.pk)
        self.pk_types[f"{app}.{name.lower()}"] = {"bigint": "bigint", "smallint": "smallint"}.get(
            key.type, "uuid" if key.type == "uuid" else ("integer" if "int" in key.type else key.type)
        )
        self.models[f"{app}.{name.lower()}"] = DjangoModel(str(table), fields)
        self.replay.create_table(str(table), columns)

    def _field_op(self, app: str, kind: str, model: DjangoModel, op: ast.Call) -> None:
        table, field_name = model.table, _literal(_arg(op, 1, "name"), None)
        if kind == "RenameField":
            old, new = _literal(_arg(op, 1, "old_name"), ""), _literal(_arg(op, 2, "new_name"), "")
            spec = model.fields.pop(str(old), None)
            if spec is None:
                self.replay.forget(table)
                return
            if spec.column:
                relation_suffix = spec.column == f"{old}_id"
                renamed = f"{new}_id" if relation_suffix else (new if spec.column == old else spec.column)
                if renamed != spec.column:
                    self.replay.change_column(table, spec.column, name=renamed)
                spec = replace(spec, column=renamed)
            model.fields[str(new)] = spec
            return
        if kind == "RemoveField":
            spec = model.fields.pop(str(field_name), None)
            if spec is None:
                self.replay.forget(table)
            elif spec.column:
                self.replay.remove_column(table, spec.column)
            return
        spec = _django_field(str(field_name), _arg(op, 2, "field"), self.pk_types, app)
        if spec is None:
            self.replay.forget(table)
            return
        if kind == "AddField":
            model.fields[str(field_name)] = spec
            if spec.column:
                self.replay.add_column(
                    table, self.replay.column(spec.column, spec.type, spec.nullable, spec.pk)
                )
            return
        old = model.fields.get(str(field_name))  # AlterField
        model.fields[str(field_name)] = spec
        if old is None or bool(old.column) != bool(spec.column):
            self.replay.forget(table)
        elif spec.column and old.column:
            self.replay.change_column(
                table, old.column, name=spec.column, type=spec.type, nullable=spec.nullable, pk=spec.pk
            )


def _replaces(module: ast.Module) -> list[str]:
    for node in ast.walk(module):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "replaces" for t in node.targets
        ):
            return [n for _, n in _literal(node.value, [])]
    return []


def _literal_list(node: ast.AST | None) -> list[ast.AST]:
    return list(node.elts) if isinstance(node, ast.List | ast.Tuple) else []


def _operations(module: ast.Module) -> list[ast.AST] | None:
    for node in ast.walk(module):
        if isinstance(node, ast.ClassDef) and node.name == "Migration":
            for item in node.body:
                if isinstance(item, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "operations" for t in item.targets
                ):
                    return _literal_list(item.value)
    return None


# --- Rails ---------------------------------------------------------------------------------------

RAILS_TYPES = {  # Rails type -> PostgreSQL type, as the PostgreSQL adapter creates it
    "text": "text", "integer": "integer", "bigint": "bigint", "float": "double precision",
    "datetime": "timestamp", "timestamp": "timestamp", "time": "time", "date": "date",
    "binary": "bytea", "boolean": "boolean", "json": "json", "jsonb": "jsonb", "uuid": "uuid",
    "inet": "inet", "cidr": "cidr", "macaddr": "macaddr", "hstore": "hstore", "citext": "citext",
    "tsvector": "tsvector", "ltree": "ltree", "money": "money", "xml": "xml", "interval": "interval",
    "point": "point", "bit": "bit(1)", "bit_varying": "bit varying", "daterange": "daterange",
    "tsrange": "tsrange", "tstzrange": "tstzrange", "int4range": "int4range", "int8range": "int8range",
    "numrange": "numrange", "timestamptz": "timestamp with time zone", "smallint": "smallint",
}  # fmt: skip
RAILS_COLUMN = re.compile(r"""^\s*t\.(\w+)\s*\(?\s*(.*?)\)?\s*$""")
SYMBOL = re.compile(r"""^\s*(?::(\w+)|["'](\w+)["'])""")


def _rails_options(text: str) -> dict[str, str]:
    """`null: false, limit: 30` and `:null => false` alike, as raw strings."""
    found = {}
    for key, value in re.findall(r"""[:]?(\w+)(?::|\s*=>)\s*([^,]+?)\s*(?=,\s*[:]?\w+(?::|\s*=>)|$)""", text):
        found[key] = value.strip()
    return found


def _rails_args(text: str) -> tuple[list[str], dict[str, str]]:
    """Leading symbol/string arguments and the options after them."""
    names: list[str] = []
    rest = text.strip()
    while True:
        match = SYMBOL.match(rest)
        if not match or (
            re.match(r"""^\s*:?\w+\s*(?::\s|=>)""", rest) and not rest.lstrip().startswith((":", '"', "'"))
        ):
            break
        token = match.group(1) or match.group(2)
        after = rest[match.end() :]
        if after.lstrip().startswith("=>"):
            break  # `:null => false` is an option, not a name
        names.append(token)
        rest = after.lstrip()
        if rest.startswith(","):
            rest = rest[1:]
        else:
            break
    return names, _rails_options(rest)


def _rails_type(kind: str, options: dict[str, str], modern: bool) -> str:
    if kind in ("string", "char", "character"):
        limit = options.get("limit")
        if limit and limit.isdigit():
            return f"character varying({limit})"
        return "character varying" if modern else "character varying(255)"
    if kind == "decimal" or kind == "numeric":
        precision, scale = options.get("precision"), options.get("scale")
        if precision and precision.isdigit():
            return f"numeric({precision},{scale if scale and scale.isdigit() else 0})"
        return "numeric"
    if kind == "integer":
        limit = options.get("limit")
        if limit and limit.isdigit():
            size = int(limit)
            return "smallint" if size <= 2 else ("integer" if size <= 4 else "bigint")
        return "integer"
    if kind in ("datetime", "timestamp") and options.get("precision", "").isdigit():
        return f"timestamp({options['precision']})"
    return RAILS_TYPES.get(kind, kind)


def _rails_null(options: dict[str, str], default: bool = True) -> bool:
    value = options.get("null")
    return default if value is None else value != "false"


class RailsHistory:
    """`db/migrate/*.rb` files in timestamp order; only `change`/`up` bodies are replayed."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay

    def run(self, repo: Repo) -> None:
        paths = [p for p in repo.files() if re.search(r"db/migrate/\d+_\w+\.rb$", p) and not _skipped(p)]
        for path in sorted(paths, key=lambda p: (Path(p).name.split("_")[0].zfill(14), p)):
            text = repo.read(path)
            modern = _rails_version(text) >= 5.1
            self.replay.begin(path)
            self._body(_forward_body(text), modern)
            self.replay.end()

    def _body(self, lines: list[str], modern: bool) -> None:
        block: tuple[str, str] | None = None  # ("create" | "change", table)
        block_columns: list[Col] = []
        for raw in lines:
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            opened = re.match(r"""^\s*(create_table|change_table)\s*\(?\s*[:"'](\w+)["']?(.*?)\bdo\b""", line)
            if opened:
                block = ("create" if opened.group(1) == "create_table" else "change", opened.group(2))
                options = _rails_options(opened.group(3).strip(" ,)"))
                block_columns = []
                if block[0] == "create" and options.get("id") != "false":
                    pk_type = {"uuid": "uuid", "string": "character varying"}.get(
                        options.get("id", "").lstrip(":"), "bigint" if modern else "integer"
                    )
                    block_columns.append(self.replay.column("id", pk_type, False, True))
                continue
            if block and re.match(r"^\s*end\b", line):
                if block[0] == "create":
                    self.replay.create_table(block[1], block_columns)
                block = None
                continue
            if block:
                self._block_line(block, line, block_columns, modern)
            else:
                self._statement(line.strip(), modern)

    def _columns(self, kind: str, names: list[str], options: dict[str, str], modern: bool) -> list[Col]:
        """The columns one `t.<kind>` or `add_<kind>` line makes."""
        if kind == "timestamps":
            type_ = _rails_type("datetime", options, modern)
            null = _rails_null(options, default=not modern)
            return [self.replay.column(n, type_, null) for n in ("created_at", "updated_at")]
        if kind in ("references", "belongs_to"):
            out = []
            ref_type = options.get("type", "").lstrip(":") or ("bigint" if modern else "integer")
            for name in names:
                out.append(
                    self.replay.column(
                        f"{name}_id", RAILS_TYPES.get(ref_type, ref_type), _rails_null(options)
                    )
                )
                if options.get("polymorphic") == "true":
                    out.append(
                        self.replay.column(
                            f"{name}_type", _rails_type("string", {}, modern), _rails_null(options)
                        )
                    )
            return out
        if kind == "column" and len(names) >= 2:
            kind, names = names[1], names[:1]
        elif kind == "column" and "type" in options:
            kind = options["type"].lstrip(":")
        type_ = _rails_type(kind, options, modern)
        return [
            self.replay.column(n, type_, _rails_null(options), options.get("primary_key") == "true")
            for n in names
        ]

    def _block_line(self, block: tuple[str, str], line: str, columns: list[Col], modern: bool) -> None:
        match = RAILS_COLUMN.match(line)
        if not match:
            return
        method, rest = match.group(1), match.group(2)
        names, options = _rails_args(rest)
        column_name = re.match(r"""^\s*:(\w+)\s*,\s*:(\w+)""", rest)
        if method == "column" and column_name:  # t.column :name, :type, ...
            names = [column_name.group(1), column_name.group(2)]
        table = block[1]
        if method in ("index", "remove_index", "foreign_key", "check_constraint", "remove_foreign_key"):
            return
        if block[0] == "create":
            if method in RAILS_TYPES or method in {
                "string",
                "decimal",
                "numeric",
                "references",
                "belongs_to",
                "timestamps",
                "column",
                "char",
            }:
                columns.extend(self._columns(method, names, options, modern))
            return
        if method == "rename" and len(names) == 2:
            self.replay.change_column(table, names[0], name=names[1])
        elif method == "remove":
            for name in names:
                self.replay.remove_column(table, name)
        elif method == "change" and len(names) >= 1:
            kind = re.search(r""",\s*:(\w+)""", rest)
            if kind:
                self.replay.change_column(
                    table,
                    names[0],
                    type=_rails_type(kind.group(1), options, modern),
                    nullable=_rails_null(options) if "null" in options else None,
                )
        elif (
            method in ("references", "belongs_to", "timestamps", "column", "string", "decimal")
            or method in RAILS_TYPES
        ):
            for column in self._columns(method, names, options, modern):
                self.replay.add_column(table, column)
        elif method in ("remove_references", "remove_belongs_to"):
            for name in names:
                self.replay.remove_column(table, f"{name}_id")
        else:
            self.replay.forget(table)

    def _statement(self, line: str, modern: bool) -> None:
        parts = re.split(r"\s+(?:if|unless)\s+", line, maxsplit=1)
        match = re.match(r"^(\w+)[\s(]+(.*?)\)?$", parts[0])
        if not match:
            return
        method, rest = match.group(1), match.group(2)
        names, options = _rails_args(rest)
        if len(parts) > 1 and len(names) >= 2:  # guarded by a condition: only where it can apply
            present = self.replay.has_column(names[0], names[1])
            if present is None or present != method.startswith(("rename", "remove", "change")):
                return
        if method == "add_column" and len(names) >= 2:
            kind = names[2] if len(names) >= 3 else options.get("type", "string").lstrip(":")
            self.replay.add_column(names[0], self._columns(kind, [names[1]], options, modern)[0])
        elif method in ("add_reference", "add_belongs_to") and len(names) >= 2:
            for column in self._columns("references", [names[1]], options, modern):
                self.replay.add_column(names[0], column)
        elif method == "add_timestamps" and names:
            for column in self._columns("timestamps", [], options, modern):
                self.replay.add_column(names[0], column)
        elif method == "remove_timestamps" and names:
            for name in ("created_at", "updated_at"):
                self.replay.remove_column(names[0], name)
        elif method in ("remove_column", "remove_columns") and len(names) >= 2:
            single = method == "remove_column"
            for name in names[1:2] if single else names[1:]:
                self.replay.remove_column(names[0], name)
        elif method in ("remove_reference", "remove_belongs_to") and len(names) >= 2:
            self.replay.remove_column(names[0], f"{names[1]}_id")
            if options.get("polymorphic") == "true":
                self.replay.remove_column(names[0], f"{names[1]}_type")
        elif method == "rename_column" and len(names) >= 3:
            self.replay.change_column(names[0], names[1], name=names[2])
        elif method == "change_column" and len(names) >= 3:
            nullable = _rails_null(options) if "null" in options else None
            self.replay.change_column(
                names[0], names[1], type=_rails_type(names[2], options, modern), nullable=nullable
            )
        elif method == "change_column_null" and len(names) >= 2:
            flag = re.search(r",\s*(true|false)\b", rest)
            if flag:
                self.replay.change_column(names[0], names[1], nullable=flag.group(1) == "true")
        elif method == "rename_table" and len(names) >= 2:
            self.replay.rename_table(names[0], names[1])
        elif method == "drop_table" and names:
            self.replay.drop_table(names[0])


def _rails_version(text: str) -> float:
    match = re.search(r"Migration\[(\d+\.\d+)\]", text)
    return float(match.group(1)) if match else 4.2


def _forward_body(text: str) -> list[str]:
    """The lines of `def change` or `def up`/`def self.up`, without `down` and helper methods."""
    lines = text.splitlines()
    out: list[str] = []
    inside, depth_indent = False, 0
    for line in lines:
        stripped = line.strip()
        started = re.match(r"^(\s*)def\s+(self\.)?(change|up)\b", line)
        if started:
            inside, depth_indent = True, len(started.group(1))
            continue
        if (
            inside
            and re.match(rf"^\s{{{depth_indent}}}end\b", line)
            and len(line) - len(line.lstrip()) == depth_indent
        ):
            inside = False
            continue
        if inside and not stripped.startswith(("reversible", "dir.down", "say")):
            out.append(line)
    return out


# --- Alembic -------------------------------------------------------------------------------------

SQLALCHEMY_TYPES = {
    "Integer": "integer", "INTEGER": "integer", "BigInteger": "bigint", "BIGINT": "bigint",
    "SmallInteger": "smallint", "SMALLINT": "smallint", "Boolean": "boolean", "BOOLEAN": "boolean",
    "Text": "text", "TEXT": "text", "UnicodeText": "text", "Date": "date", "DATE": "date",
    "Time": "time", "Float": "double precision", "FLOAT": "double precision", "REAL": "real",
    "LargeBinary": "bytea", "BLOB": "bytea", "BYTEA": "bytea", "JSON": "json", "JSONB": "jsonb",
    "UUID": "uuid", "Uuid": "uuid", "INET": "inet", "CIDR": "cidr", "Interval": "interval",
    "INTERVAL": "interval", "TSVECTOR": "tsvector", "HSTORE": "hstore", "CITEXT": "citext",
    "UTCDateTime": "timestamp without time zone", "PyIntEnum": "smallint", "UUIDType": "uuid",
    "MONEY": "money", "MACADDR": "macaddr",
}  # fmt: skip


def _sa_type(node: ast.AST | None) -> str | None:
    if node is None:
        return None
    name = _call_name(node)
    call = node if isinstance(node, ast.Call) else None
    if name in ("String", "Unicode", "VARCHAR", "CHAR", "NVARCHAR", "NCHAR"):
        length = _literal(_arg(call, 0, "length"), None) if call else None
        base = "character" if name in ("CHAR", "NCHAR") else "character varying"
        return f"{base}({length})" if isinstance(length, int) else base
    if name in ("Numeric", "NUMERIC", "DECIMAL"):
        precision = _literal(_arg(call, 0, "precision"), None) if call else None
        scale = _literal(_arg(call, 1, "scale"), 0) if call else 0
        return f"numeric({precision},{scale})" if isinstance(precision, int) else "numeric"
    if name in ("DateTime", "TIMESTAMP", "DATETIME"):
        timezone = bool(_literal(_kwargs(call).get("timezone"), False)) if call else False
        return "timestamp with time zone" if timezone else "timestamp without time zone"
    if name == "ARRAY" and call and call.args:
        inner = _sa_type(call.args[0])
        return f"{inner}[]" if inner else None
    if name == "Enum" and call:
        enum_name = _literal(_kwargs(call).get("name"), None)
        return str(enum_name) if enum_name else "character varying"
    return SQLALCHEMY_TYPES.get(name)


def _sa_column(replay: Replay, node: ast.AST | None) -> Col | None:
    if not (isinstance(node, ast.Call) and _call_name(node) == "Column" and node.args):
        return None
    name = _literal(node.args[0], None)
    type_node = node.args[1] if len(node.args) > 1 else _kwargs(node).get("type_")
    type_ = _sa_type(type_node)
    if not isinstance(name, str) or type_ is None:
        return None
    keywords = _kwargs(node)
    pk = bool(_literal(keywords.get("primary_key"), False))
    nullable = bool(_literal(keywords.get("nullable"), not pk))
    return replay.column(name, type_, nullable, pk)


class AlembicHistory:
    """Alembic revisions in dependency order; `upgrade()` bodies only."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay

    def run(self, repo: Repo) -> None:
        revisions: dict[str, tuple[str, ast.Module, list[str]]] = {}
        for path in repo.files():
            if not re.search(r"(alembic|migrations)/versions/\w+\.py$", path) or _skipped(path):
                continue
            try:
                module = ast.parse(repo.read(path))
            except SyntaxError:
                continue
            values = {
                t.id: _literal(node.value, None)
                for node in module.body
                if isinstance(node, ast.Assign)
                for t in node.targets
                if isinstance(t, ast.Name)
            }
            revision, down = values.get("revision"), values.get("down_revision")
            if isinstance(revision, str):
                parents = [down] if isinstance(down, str) else list(down or [])
                revisions[revision] = (path, module, [p for p in parents if isinstance(p, str)])
        for revision in _topological(revisions):
            path, module, _ = revisions[revision]
            upgrade = next(
                (n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None
            )
            if upgrade is None:
                continue
            self.replay.begin(path)
            for node in ast.walk(upgrade):
                self._operation(node, upgrade)
            self.replay.end()

    def _table(self, call: ast.Call, index: int, name: str) -> str | None:
        table = _literal(_arg(call, index, name), None)
        schema = _literal(_kwargs(call).get("schema"), None)
        if not isinstance(table, str):
            return None
        return f"{schema}.{table}" if isinstance(schema, str) else table

    def _operation(self, node: ast.AST, scope: ast.AST) -> None:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            return
        owner = node.func.value
        method = node.func.attr
        batch_table = _batch_table(owner, scope) if isinstance(owner, ast.Name) and owner.id != "op" else None
        if not (isinstance(owner, ast.Name) and (owner.id == "op" or batch_table)):
            return
        shift = 0 if batch_table else 1
        table = batch_table or (self._table(node, 0, "table_name") if method != "create_table" else None)
        if method == "create_table":
            name = self._table(node, 0, "table_name")
            columns = [c for arg in node.args[1:] if (c := _sa_column(self.replay, arg))]
            keys = {
                _literal(a, None)
                for arg in node.args[1:]
                if isinstance(arg, ast.Call) and _call_name(arg) == "PrimaryKeyConstraint"
                for a in arg.args
            }
            columns = [replace(c, pk=True, nullable=False) if c.name in keys else c for c in columns]
            if name and columns:
                self.replay.create_table(name, columns)
        elif method == "drop_table" and table:
            self.replay.drop_table(table)
        elif method == "rename_table" and table:
            new = _literal(_arg(node, 1, "new_table_name"), None)
            if isinstance(new, str):
                self.replay.rename_table(table, new)
        elif method == "add_column" and table:
            column = _sa_column(self.replay, _arg(node, shift, "column"))
            if column:
                self.replay.add_column(table, column)
            else:
                self.replay.forget(table)
        elif method == "drop_column" and table:
            name = _literal(_arg(node, shift, "column_name"), None)
            if isinstance(name, str):
                self.replay.remove_column(table, name)
        elif method == "alter_column" and table:
            name = _literal(_arg(node, shift, "column_name"), None)
            keywords = _kwargs(node)
            new_name = _literal(keywords.get("new_column_name"), None)
            type_ = _sa_type(keywords.get("type_"))
            nullable = _literal(keywords.get("nullable"), None)
            if "type_" in keywords and type_ is None:
                self.replay.forget(table)
            elif isinstance(name, str):
                self.replay.change_column(table, name, name=new_name, type=type_, nullable=nullable)


def _batch_table(owner: ast.Name, scope: ast.AST) -> str | None:
    """The table of `with op.batch_alter_table("t") as <owner>:`."""
    for node in ast.walk(scope):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                target = item.optional_vars
                if (
                    isinstance(call, ast.Call)
                    and _call_name(call) == "batch_alter_table"
                    and isinstance(target, ast.Name)
                    and target.id == owner.id
                ):
                    table = _literal(_arg(call, 0, "table_name"), None)
                    return table if isinstance(table, str) else None
    return None


def _topological(revisions: dict[str, tuple[str, ast.Module, list[str]]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()

    def visit(revision: str, trail: frozenset[str]) -> None:
        if revision in done or revision in trail or revision not in revisions:
            return
        for parent in revisions[revision][2]:
            visit(parent, trail | {revision})
        done.add(revision)
        order.append(revision)

    for revision in sorted(revisions, key=lambda r: revisions[r][0]):
        visit(revision, frozenset())
    return order


# --- the projects --------------------------------------------------------------------------------

HISTORIES: dict[str, type[DjangoHistory | RailsHistory | AlembicHistory]] = {
    "django": DjangoHistory,
    "rails": RailsHistory,
    "alembic": AlembicHistory,
}


def framework_of(repo: Repo) -> str | None:
    files = repo.files()
    counts = {
        "django": sum(1 for p in files if re.search(r"/migrations/\d{4}_\w+\.py$", p)),
        "rails": sum(1 for p in files if re.search(r"db/migrate/\d+_\w+\.rb$", p)),
        "alembic": sum(1 for p in files if re.search(r"(alembic|migrations)/versions/\w+\.py$", p)),
    }
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] >= 10 else None


def build_project(project: str, git_dir: Path) -> tuple[list[dict[str, Any]], str, str | None]:
    repo = Repo(git_dir)
    framework = framework_of(repo)
    if framework is None:
        return [], repo.head(), None
    replay = Replay(project, framework)
    HISTORIES[framework](replay).run(repo)
    cases = [case for case in replay.cases if _consistent(case)]
    renamed = [c for c in cases if any(e["drift_type"] == "renamed_column" for e in c["expected"])]
    others = [c for c in cases if c not in renamed][: max(0, MAX_CASES_PER_PROJECT - len(renamed))]
    kept = {id(c) for c in renamed + others}
    return [c for c in cases if id(c) in kept], repo.head(), framework


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mirror", type=Path, help="directory of <owner>+<name>/repo git directories")
    parser.add_argument("--projects", default="", help="owner/name,... (default: every one found)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    wanted = {p for p in args.projects.split(",") if p}
    cases: list[dict[str, Any]] = []
    for git_dir in sorted(args.mirror.glob("*+*/repo")):
        project = git_dir.parent.name.replace("+", "/", 1)
        if project in HELD_OUT or (wanted and project not in wanted):
            continue
        found, head, framework = build_project(project, git_dir)
        if framework is None:
            continue
        for case in found:
            case["commit"] = head
        renames = sum(1 for c in found for e in c["expected"] if e["drift_type"] == "renamed_column")
        print(f"{project} ({framework}, {head[:10]}): {len(found)} cases, {renames} renames")
        cases += found
    text = "".join(json.dumps(case, separators=(",", ":")) + "\n" for case in cases)
    args.out.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"{len(cases)} cases written to {args.out}")


if __name__ == "__main__":
    main()
