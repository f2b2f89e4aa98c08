"""Pure core: sandboxing, quoting, config validation, built-in rendering, versions, adaptation."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from aietl.services.templates.builtin import builtin, builtin_templates
from aietl.services.templates.domain.config import check_schema, validated
from aietl.services.templates.domain.generation import (
    CannotAdapt,
    ControlSpec,
    PipelineNames,
    adapt_config,
    entry_config,
    template_variables,
)
from aietl.services.templates.domain.model import InvalidConfig, SemVer, SqlDialect, TemplateError
from aietl.services.templates.domain.preparation import prepared
from aietl.services.templates.domain.rendering import compile_template, parse_statements, render
from aietl.shared.events.schema import Drift, SuggestedMapping

SSTI_PAYLOADS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ config|attr('__class__') }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '%s'|format(''.__class__) }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__self__ }}",
    "{% set x = config.update({'a': 1}) %}{{ x }}",
    "{{ config.columns.append(1) }}",
    "{{ request }}{{ url_for }}{{ get_flashed_messages }}",
]


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_template_cannot_reach_python_internals(payload: str) -> None:
    with pytest.raises((TemplateError, InvalidConfig)):
        render(f"SELECT 1; -- {payload}\n", "postgres", {"columns": []})


def test_format_string_cannot_read_attributes() -> None:
    with pytest.raises(TemplateError):
        render("SELECT {{ '{0.__class__}'.format(config) | literal }}", "postgres", {})


INJECTIONS = [
    'x"; DROP TABLE users; --',
    "x`; DROP TABLE users; --",
    "x'; DROP TABLE users; --",
    "x\\'; DROP TABLE users; --",
    "x) UNION SELECT password FROM users --",
    "x\n; DELETE FROM users",
    "x/*",
]


@pytest.mark.parametrize("dialect", ["postgres", "clickhouse", "sqlite"])
@pytest.mark.parametrize("payload", INJECTIONS)
def test_identifiers_and_literals_cannot_inject(dialect: SqlDialect, payload: str) -> None:
    code = "SELECT {{ config.c | ident }} FROM {{ config.t | qualified }} WHERE a = {{ config.v | literal }};"
    rendered = render(code, dialect, {"c": payload, "t": {"schema": payload, "name": payload}, "v": payload})
    assert len(rendered.statements) == 1
    tree = sqlglot.parse_one(rendered.statements[0].sql, read=dialect)
    assert isinstance(tree, sqlglot.exp.Select)
    assert [column.name for column in tree.find_all(sqlglot.exp.Column) if column.name != "a"] == [payload]
    table, literal = tree.find(sqlglot.exp.Table), tree.find(sqlglot.exp.Literal)
    assert table is not None and table.name == payload
    assert literal is not None and literal.this == payload


@pytest.mark.parametrize("value", [1, None, ["a"], {"name": 1}, "", "a\x00b"])
def test_identifier_filter_rejects_non_names(value: object) -> None:
    with pytest.raises(InvalidConfig):
        render("SELECT {{ config.c | ident }}", "postgres", {"c": value})


@pytest.mark.parametrize("value", ["Int64); DROP TABLE x; --", "TEXT; DELETE", "", 5])
def test_sqltype_filter_accepts_only_types(value: object) -> None:
    with pytest.raises(InvalidConfig):
        render("SELECT CAST(1 AS {{ config.t | sqltype }})", "clickhouse", {"t": value})


def test_number_filter_rejects_non_finite_and_strings() -> None:
    for value in ["1; DROP", float("inf"), True]:
        with pytest.raises(InvalidConfig):
            render("SELECT {{ config.n | number }}", "postgres", {"n": value})


def test_strict_undefined_is_a_config_problem() -> None:
    with pytest.raises(InvalidConfig, match="lacks"):
        render("SELECT {{ config.missing | ident }}", "postgres", {})


def test_unparseable_and_opaque_sql_is_rejected() -> None:
    with pytest.raises(TemplateError, match="parse"):
        parse_statements("SELEC 1 FROM", "postgres")
    with pytest.raises(TemplateError):
        compile_template("{% if %}")


def test_statements_split_on_top_level_semicolons_only() -> None:
    statements = parse_statements("SELECT 'a;b'; INSERT INTO t VALUES (1);\n-- trailing", "postgres")
    assert [s.sql for s in statements] == ["SELECT 'a;b'", "INSERT INTO t VALUES (1)"]
    assert [s.returns_rows for s in statements] == [True, False]


def _config(pattern: str) -> dict:
    base: dict[str, Any] = {
        "target": {"schema": "dw", "name": "orders"},
        "columns": [{"name": "id"}, {"name": "amount", "source": "amt"}, {"name": "seq"}],
        "keys": ["id"],
    }
    if pattern == "streaming":
        return {
            **base,
            "columns": [{"name": "id", "type": "Int64"}, {"name": "amount", "type": "Nullable(Float64)"}],
            "topic": "orders",
            "brokers": ["kafka:9092"],
            "consumer_group": "aietl-orders",
        }
    extras: dict[str, dict[str, Any]] = {
        "full_load": {},
        "incremental": {"watermark_column": "seq", "lag_seconds": 300},
        "cdc": {"sequence_column": "seq", "operation_column": "op"},
        "scd2": {"sequence_column": "seq", "operation_column": "op", "hard_deletes": "new_record"},
    }
    return {**base, "source": {"schema": "raw", "name": "orders"}, **extras[pattern]}


@pytest.mark.parametrize("template", builtin_templates(), ids=lambda t: t.template_id)
def test_every_builtin_renders_sql_that_parses(template) -> None:
    check_schema(template.config_schema)
    config = _config(template.pattern)
    if template.template_id == "streaming_postgres":
        config.pop("consumer_group")  # the platform's consumer keeps offsets itself
    rendered = render(template.code, template.dialect, validated(template.config_schema, config))
    assert rendered.statements
    for statement in rendered.statements:
        sqlglot.parse_one(statement.sql, read=template.dialect)


SCOPE_CASES = [
    (template, mode)
    for template in builtin_templates()
    for mode in (("ignore", "invalidate", "new_record") if template.pattern == "scd2" else (None,))
]


@pytest.mark.parametrize(
    ("template", "hard_deletes"), SCOPE_CASES, ids=lambda case: getattr(case, "template_id", case)
)
def test_every_builtin_stays_within_its_scope(template, hard_deletes: str | None) -> None:
    """What the built-ins render (SCD2's `SET LOCAL work_mem` included) passes the scope check the
    service applies before saving and running a pipeline."""
    config = _config(template.pattern)
    if template.template_id == "streaming_postgres":
        config.pop("consumer_group")
    if hard_deletes is not None:
        config["hard_deletes"] = hard_deletes
    names = PipelineNames("dw.orders", "raw.orders", "dw.orders")
    _ready, rendered = prepared(
        template.config_schema, template.code, template.dialect, template.pattern, config, names
    )
    assert rendered.statements


@pytest.mark.parametrize(
    ("dialect", "code"),
    [
        ("postgres", "SET work_mem = '1GB'"),  # beyond the transaction
        ("postgres", "SET LOCAL search_path = 'other'"),
        ("postgres", "SET LOCAL work_mem = '1GB', search_path = 'other'"),
        ("postgres", "SET LOCAL ROLE postgres"),
        ("clickhouse", "SET max_memory_usage = 0"),
    ],
)
def test_only_transaction_local_work_mem_may_be_set(dialect: SqlDialect, code: str) -> None:
    with pytest.raises(TemplateError):
        prepared({"type": "object"}, code, dialect, "full_load", {}, PipelineNames("p"))


def test_streaming_renders_kafka_engine_and_materialized_view() -> None:
    template = builtin("streaming_clickhouse")
    rendered = render(template.code, "clickhouse", validated(template.config_schema, _config("streaming")))
    kinds = [sqlglot.parse_one(s.sql, read="clickhouse") for s in rendered.statements]
    assert "ENGINE = Kafka" in rendered.code and "kafka_topic_list = 'orders'" in rendered.code
    assert kinds[2].args["kind"] == "VIEW" and "MATERIALIZED" in rendered.statements[2].sql


def test_config_errors_are_all_reported_with_json_pointers() -> None:
    template = builtin("scd2_postgres")
    config = {
        "source": {"name": ""},
        "target": {},
        "columns": [{"name": "id"}, {"nme": "typo"}],
        "keys": "id",
        "hard_deletes": "sometimes",
        "unexpected": 1,
    }
    with pytest.raises(InvalidConfig) as raised:
        validated(template.config_schema, config)
    pointers = {problem.pointer for problem in raised.value.problems}
    assert {
        "/source/name",
        "/target/name",
        "/columns/1",
        "/columns/1/name",
        "/keys",
        "/hard_deletes",
        "/sequence_column",
        "",
    } <= pointers


def test_keys_and_watermark_must_be_mapped_columns() -> None:
    template = builtin("incremental_postgres")
    config = {**_config("incremental"), "keys": ["id", "nope"], "watermark_column": "ts"}
    with pytest.raises(InvalidConfig) as raised:
        validated(template.config_schema, config)
    assert [p.pointer for p in raised.value.problems] == ["/keys/1", "/watermark_column"]


def test_semver_orders_and_bumps() -> None:
    assert SemVer.parse("1.10.0") > SemVer.parse("1.9.3")
    assert str(SemVer.parse("2.3.4").bump_minor()) == "2.4.0"
    with pytest.raises(ValueError):
        SemVer.parse("1.0")


def test_control_entry_becomes_template_config() -> None:
    entry = ControlSpec(
        entry_id="e1",
        source_system="crm",
        source_object="raw.orders",
        target_system="platform",
        target_object="dw.orders",
        template_id="incremental_postgres",
        load_type="incremental",
        watermark_column="seq",
        keys=("id",),
        config={"columns": [{"name": "id"}, {"name": "seq"}], "lag_seconds": 60},
    )
    config = entry_config(entry, "incremental", builtin("incremental_postgres").config_schema)
    assert config["source"] == {"schema": "raw", "name": "orders"}
    assert config["target"] == {"schema": "dw", "name": "orders"}
    assert config["watermark_column"] == "seq" and config["keys"] == ["id"] and config["lag_seconds"] == 60
    assert "source_table" not in config  # the built-in schema allows no other property
    assert entry.pipeline_name == "platform.dw.orders"

    # the specification's template names its tables `source_table`/`target_table` and takes more
    spec_schema = {"type": "object", "properties": {"source_table": {"type": "string"}}}
    config = entry_config(entry, "incremental", spec_schema)
    assert (config["source_table"], config["target_table"], config["watermark_column"]) == (
        "raw.orders",
        "dw.orders",
        "seq",
    )
    closed = {**spec_schema, "additionalProperties": False}
    assert entry_config(entry, "incremental", closed) == {
        "columns": [{"name": "id"}, {"name": "seq"}],
        "lag_seconds": 60,
        "source_table": "raw.orders",
    }


def test_templates_see_config_keys_and_pipeline_facts_at_top_level() -> None:
    variables = template_variables(
        {"source_table": "orders", "config": "shadowed?", "_hidden": 1, "not a name": 2},
        pipeline_name="orders_incremental",
        source_object=None,
        target_object=None,
    )
    assert variables == {
        "pipeline_name": "orders_incremental",
        "target_table": "orders_incremental",
        "source_table": "orders",
    }
    code = "SELECT * FROM {{ source_table }} JOIN {{ target_table | ident }} ON TRUE"
    rendered = render(code, "postgres", {"source_table": "orders"}, variables)
    assert rendered.code == 'SELECT * FROM orders JOIN "orders_incremental" ON TRUE'


def _drift(kind: str, column: str, **extra: object) -> Drift:
    return Drift(drift_type=kind, column_name=column, severity="low", confidence_score=0.9, **extra)


def test_adaptation_follows_renames_adds_and_removes_columns() -> None:
    config: dict[str, Any] = {
        "columns": [
            {"name": "id", "source": "id"},
            {"name": "amount", "source": "amt"},
            {"name": "x", "source": "x"},
        ],
        "keys": ["id"],
    }
    mapping = SuggestedMapping(
        auto_include=True, source_column="email", target_column="email", target_type="TEXT"
    )
    adapted = adapt_config(
        config,
        [
            _drift("renamed_column", "amount_usd", previous_name="amt"),
            _drift("new_column", "email", suggested_mapping=mapping),
            _drift("new_column", "ignored", suggested_mapping=SuggestedMapping(auto_include=False)),
            _drift("removed_column", "x"),
        ],
    )
    assert adapted["columns"] == [
        {"name": "id", "source": "id"},
        {"name": "amount", "source": "amount_usd"},
        {"name": "email", "source": "email", "type": "TEXT"},
    ]
    assert config["columns"][1]["source"] == "amt"  # the input is not mutated
    with pytest.raises(CannotAdapt):
        adapt_config(config, [_drift("removed_column", "id")])
