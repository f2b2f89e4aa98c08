"""Drift detection, severities, suggested mappings, accepting drifts and policies (pure domain)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from aietl.services.drift.domain import (
    DEFAULT_POLICY,
    InvalidSchemaError,
    columns_from_stored,
    columns_of,
    complete,
    decide,
    detect,
    schema_hash,
)
from aietl.services.drift.domain.adapt import apply_drifts
from aietl.shared.events.schema import ObservedColumn

BASE: list[dict[str, Any]] = [
    {"name": "id", "type": "bigint", "nullable": False, "primary_key": True},
    {"name": "cust_nm", "type": "varchar(50)"},
    {"name": "amount", "type": "numeric(10,2)", "nullable": False},
    {"name": "note", "type": "text"},
    {"name": "created_at", "type": "timestamptz", "nullable": False},
]


def cols(items, dialect="postgres"):
    return columns_of([ObservedColumn.model_validate(i) for i in items], dialect)


def changed(**changes):
    """BASE with per-column replacements: name -> dict (merged) or None (removed)."""
    out = []
    for item in BASE:
        change = changes.get(item["name"], {})
        if change is not None:
            out.append({**item, **change})
    return out


def kinds(drifts):
    return sorted((d.drift_type, d.column_name, d.severity) for d in drifts)


def test_column_order_alone_is_not_drift() -> None:
    before, after = cols(BASE), cols(list(reversed(BASE)))
    assert detect(before, after, "postgres") == []
    assert schema_hash(before) == schema_hash(after)


def test_the_same_schema_in_another_dialect_is_not_drift() -> None:
    clickhouse = [
        {"name": "id", "type": "Int64", "nullable": False, "primary_key": True},
        {"name": "cust_nm", "type": "Nullable(String)"},
        {"name": "amount", "type": "Decimal(10, 2)", "nullable": False},
        {"name": "note", "type": "Nullable(String)"},
        {"name": "created_at", "type": "DateTime64(3, 'UTC')", "nullable": False},
    ]
    drifts = detect(cols(BASE), cols(clickhouse, "clickhouse"), "clickhouse")
    assert kinds(drifts) == [("type_change", "cust_nm", "low")]  # varchar(50) -> String widens


def test_new_and_removed_columns_with_severity() -> None:
    kept = changed(note=None, created_at=None)
    after = [kept[0], {"name": "region", "type": "text"}, *kept[1:]]
    after.append({"name": "tenant", "type": "int", "nullable": False})
    assert kinds(detect(cols(BASE), cols(after), "postgres")) == [
        ("new_column", "region", "low"),
        ("new_column", "tenant", "medium"),
        ("removed_column", "created_at", "critical"),
        ("removed_column", "note", "high"),
    ]


def test_type_nullability_and_key_changes() -> None:
    after = changed(
        amount={"type": "numeric(12,2)"},
        cust_nm={"type": "varchar(20)", "nullable": False},
        created_at={"type": "text", "primary_key": True},
        id={"type": "int"},
    )
    assert kinds(detect(cols(BASE), cols(after), "postgres")) == [
        ("nullability_change", "cust_nm", "high"),
        ("primary_key_change", "created_at", "high"),
        ("type_change", "amount", "low"),
        ("type_change", "created_at", "medium"),
        ("type_change", "cust_nm", "high"),
        ("type_change", "id", "high"),
    ]


def test_rename_detected_with_calibrated_confidence_and_mapping() -> None:
    after = changed(cust_nm={"name": "customerName", "type": "varchar(255)"})
    drifts = detect(cols(BASE), cols(after), "postgres")
    assert kinds(drifts) == [
        ("renamed_column", "customerName", "medium"),
        ("type_change", "customerName", "low"),
    ]
    rename = next(d for d in drifts if d.drift_type == "renamed_column")
    assert rename.previous_name == "cust_nm" and rename.confidence_score > 0.9
    assert rename.suggested_mapping is not None
    assert (
        rename.suggested_mapping.transformation_logic == 'CAST("customerName" AS VARCHAR(255)) AS "cust_nm"'
    )


def test_a_drop_and_an_add_are_not_paired() -> None:
    """`note` dropped and `fax` added: a database appends the new column, a rename keeps its place."""
    after = [*changed(note=None), {"name": "fax", "type": "text"}]
    drifts = detect(cols(BASE), cols(after), "postgres")
    assert sorted(d.drift_type for d in drifts) == ["new_column", "removed_column"]
    assert all(d.confidence_score < 1.0 for d in drifts)  # the alternative (a rename) was considered


def test_sample_values_tip_an_ambiguous_pair() -> None:
    """`ref` gone from the middle, `booking_code` appended: two columns by name and place, one by
    their values; the rename says that the samples decided it."""
    values = [f"BK-{i:04d}" for i in range(12)]
    ref = {"name": "ref", "type": "text", "sample_values": values}
    code = {"name": "booking_code", "type": "text", "sample_values": list(reversed(values))}
    before, after = [BASE[0], ref, *BASE[1:]], [*BASE, code]
    without = detect(
        cols([BASE[0], {**ref, "sample_values": []}, *BASE[1:]]),
        cols([*BASE, {**code, "sample_values": []}]),
        "postgres",
    )
    with_samples = detect(cols(before), cols(after), "postgres")
    assert [d.drift_type for d in with_samples] == ["renamed_column"]
    assert with_samples[0].evidence[0].kind == "samples_overlap" and with_samples[0].evidence[0].weight > 0
    assert "samples_overlap" in with_samples[0].description
    assert "renamed_column" not in [d.drift_type for d in without]


@pytest.mark.parametrize("dialect", ["postgres", "mysql", "clickhouse", "sqlite", "generic"])
def test_every_mapping_is_valid_sql_in_the_target_dialect(dialect) -> None:
    after = [
        *changed(note=None, amount={"type": "numeric(12,4)"}, cust_nm={"name": "customer_name"}),
        {"name": "region", "type": "varchar(20)"},
    ]
    drifts = detect(cols(BASE), cols(after), dialect)
    assert len(drifts) == 4
    for drift in drifts:
        mapping = drift.suggested_mapping
        assert mapping is not None and mapping.dialect == dialect
        read = None if dialect == "generic" else dialect
        sqlglot.parse_one(f"SELECT {mapping.transformation_logic} FROM t", read=read)


def test_invalid_schemas_name_the_field() -> None:
    with pytest.raises(InvalidSchemaError) as error:
        columns_of([ObservedColumn(name="a", type="int"), ObservedColumn(name="a", type="int")], "generic")
    assert error.value.field == "columns[1].name"


def test_accepting_all_drifts_yields_the_observed_schema() -> None:
    after = [
        *changed(note=None, amount={"type": "numeric(12,4)"}, cust_nm={"name": "customer_name"}),
        {"name": "region", "type": "text"},
    ]
    before_columns, after_columns = cols(BASE), cols(after)
    drifts = detect(before_columns, after_columns, "postgres")
    stored = apply_drifts([c.stored() for c in before_columns], [c.stored() for c in after_columns], drifts)
    assert schema_hash(columns_from_stored(stored)) == schema_hash(after_columns)
    only_new = [d for d in drifts if d.drift_type == "new_column"]
    partial = apply_drifts(
        [c.stored() for c in before_columns], [c.stored() for c in after_columns], only_new
    )
    assert [c["name"] for c in partial] == [*[c["name"] for c in BASE], "region"]


def test_policy_decides_by_the_strictest_drift() -> None:
    after = [*changed(note=None), {"name": "region", "type": "text"}]
    drifts = detect(cols(BASE), cols(after), "postgres")
    assert decide([d for d in drifts if d.severity == "low"], DEFAULT_POLICY) == "auto_adapt"
    assert decide(drifts, DEFAULT_POLICY) == "alert"  # a nullable column removed is high
    assert decide(drifts, complete({"high": "fail"})) == "fail"
    assert decide([], DEFAULT_POLICY) == "auto_adapt"
