"""Drift detection: compare an observed schema with its baseline, classify, grade, suggest.

Severity table (documented in docs/drift.md):

| drift | condition | severity |
|---|---|---|
| new_column | nullable | low |
| new_column | NOT NULL | medium |
| new_column | part of the primary key | high |
| removed_column | nullable | high |
| removed_column | NOT NULL or primary key | critical |
| renamed_column | any | medium (high for a primary-key column) |
| type_change | widening within a family (int→bigint, varchar(n)→varchar(m>n)) | low |
| type_change | widening across families (int→text, date→timestamp) | medium |
| type_change | narrowing | high |
| type_change | incompatible | critical |
| nullability_change | NOT NULL → NULL | low |
| nullability_change | NULL → NOT NULL | high |
| primary_key_change | a column joins or leaves the key | high |

A type change on a primary-key column is at least medium.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aietl.services.drift.domain.mapping import mapping
from aietl.services.drift.domain.renames import Candidate, RenameModel, candidates, pair_renames
from aietl.services.drift.domain.schema import Column
from aietl.services.drift.domain.types import classify
from aietl.shared.events.schema import Dialect, Drift, Evidence, Severity

SEVERITY_ORDER: tuple[Severity, ...] = ("low", "medium", "high", "critical")


def _at_least(severity: Severity, floor: Severity) -> Severity:
    return max(severity, floor, key=SEVERITY_ORDER.index)


@dataclass(frozen=True, slots=True)
class _Matched:
    old: Column
    new: Column


def detect(
    baseline: Sequence[Column],
    observed: Sequence[Column],
    dialect: Dialect,
    *,
    model: RenameModel | None = None,
    infer_renames: bool = True,
) -> list[Drift]:
    """Every drift from `baseline` to `observed`; column order alone is not drift.

    `infer_renames=False` is the plain name diff (a rename reads as a removed and a new column)."""
    old_by_name = {c.name: c for c in baseline}
    change, scored = candidates(baseline, observed, model) if infer_renames else (None, [])
    renames = pair_renames(scored, model)
    renamed_old = {r.removed.name: r for r in renames}
    renamed_new = {r.added.name: r for r in renames}
    best: dict[tuple[str, str], Candidate] = {}
    for candidate in scored:  # most likely first
        best.setdefault(("-", candidate.removed.name), candidate)
        best.setdefault(("+", candidate.added.name), candidate)
    new_names = {c.name for c in observed}
    removed = change.removed if change else [c for c in baseline if c.name not in new_names]
    added = change.added if change else [c for c in observed if c.name not in old_by_name]

    drifts: list[Drift] = []
    for column in added:
        if column.name not in renamed_new:
            drifts.append(_new_column(column, best.get(("+", column.name)), dialect, model))
    for column in removed:
        if column.name not in renamed_old:
            drifts.append(_removed_column(column, best.get(("-", column.name)), dialect, model))
    pairs = [_Matched(old_by_name[c.name], c) for c in observed if c.name in old_by_name]
    for rename in renames:
        drifts.append(_renamed_column(rename, dialect, model))
        pairs.append(_Matched(rename.removed, rename.added))
    for pair in pairs:
        drifts.extend(_attribute_changes(pair.old, pair.new, dialect))
    return drifts


def _evidence(candidate: Candidate | None, model: RenameModel | None) -> list[Evidence]:
    if candidate is None:
        return []
    return [Evidence(kind=kind, weight=round(weight, 3)) for kind, weight in candidate.evidence(model)]


def _not_renamed(candidate: Candidate | None) -> float:
    """Confidence that a new or removed column is not half of a rename: 1 - its best pair's."""
    return round(1.0 - (candidate.probability if candidate else 0.0), 4)


def _new_column(column: Column, best: Candidate | None, dialect: Dialect, model: RenameModel | None) -> Drift:
    severity: Severity = "high" if column.primary_key else ("low" if column.nullable else "medium")
    return Drift(
        drift_type="new_column",
        column_name=column.name,
        new_type=column.type,
        new_nullable=column.nullable,
        severity=severity,
        confidence_score=_not_renamed(best),
        suggested_mapping=mapping(
            source=column.name,
            target=column,
            alias=column.name,
            dialect=dialect,
            auto_include=severity == "low",
        ),
        description=f"new {'NOT NULL ' if not column.nullable else ''}column {column.name} {column.type}",
        evidence=_evidence(best, model),
    )


def _removed_column(
    column: Column, best: Candidate | None, dialect: Dialect, model: RenameModel | None
) -> Drift:
    critical = column.primary_key or not column.nullable
    return Drift(
        drift_type="removed_column",
        column_name=column.name,
        old_type=column.type,
        old_nullable=column.nullable,
        severity="critical" if critical else "high",
        confidence_score=_not_renamed(best),
        suggested_mapping=mapping(
            source=None, target=column, alias=column.name, dialect=dialect, auto_include=False
        ),
        description=f"column {column.name} removed; the mapping keeps it as NULL",
        evidence=_evidence(best, model),
    )


def _renamed_column(rename: Candidate, dialect: Dialect, model: RenameModel | None) -> Drift:
    old, new = rename.removed, rename.added
    evidence = _evidence(rename, model)
    decided = ", ".join(e.kind for e in evidence if e.weight > 0)[:200]
    return Drift(
        drift_type="renamed_column",
        column_name=new.name,
        previous_name=old.name,
        old_type=old.type,
        new_type=new.type,
        severity="high" if old.primary_key or new.primary_key else "medium",
        confidence_score=round(rename.probability, 4),
        suggested_mapping=mapping(
            source=new.name, target=new, alias=old.name, dialect=dialect, auto_include=False
        ),
        description=f"column {old.name} renamed to {new.name} (evidence: {decided or 'none'})",
        evidence=evidence,
    )


def _attribute_changes(old: Column, new: Column, dialect: Dialect) -> list[Drift]:
    drifts = []
    change = classify(old.sql_type, new.sql_type)
    if change != "same":
        same_family = old.sql_type.family == new.sql_type.family
        severity: Severity = {
            "widening": "low" if same_family else "medium",
            "narrowing": "high",
            "incompatible": "critical",
        }[change]
        if old.primary_key or new.primary_key:
            severity = _at_least(severity, "medium")
        drifts.append(
            Drift(
                drift_type="type_change",
                column_name=new.name,
                old_type=old.type,
                new_type=new.type,
                change_class=change,
                severity=severity,
                confidence_score=1.0,
                suggested_mapping=mapping(
                    source=new.name,
                    target=new,
                    alias=new.name,
                    dialect=dialect,
                    auto_include=severity == "low",
                ),
                description=f"{new.name}: {old.sql_type.canonical} -> {new.sql_type.canonical} ({change})",
            )
        )
    if old.nullable != new.nullable:
        relaxed = new.nullable
        drifts.append(
            Drift(
                drift_type="nullability_change",
                column_name=new.name,
                old_nullable=old.nullable,
                new_nullable=new.nullable,
                change_class="widening" if relaxed else "narrowing",
                severity="low" if relaxed else "high",
                confidence_score=1.0,
                suggested_mapping=mapping(
                    source=new.name, target=new, alias=new.name, dialect=dialect, auto_include=relaxed
                ),
                description=f"{new.name}: {'NOT NULL -> NULL' if relaxed else 'NULL -> NOT NULL'}",
            )
        )
    if old.primary_key != new.primary_key:
        drifts.append(
            Drift(
                drift_type="primary_key_change",
                column_name=new.name,
                severity="high",
                confidence_score=1.0,
                suggested_mapping=mapping(
                    source=new.name, target=new, alias=new.name, dialect=dialect, auto_include=False
                ),
                description=f"{new.name} {'joins' if new.primary_key else 'leaves'} the primary key",
            )
        )
    return drifts
