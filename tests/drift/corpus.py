"""The labelled corpus and how the detector is scored on it (shared by the tests and the fitter)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from services.drift.domain import columns_of, detect
from services.drift.domain.renames import candidates
from shared.events.schema import DriftType, ObservedColumn

CORPUS = Path(__file__).parents[1] / "data" / "drift_corpus.jsonl"
DRIFT_TYPES = get_args(DriftType)  # the contract's list, so a new drift type is scored too


def load_cases(path: Path = CORPUS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _columns(side: dict[str, Any]):
    return columns_of([ObservedColumn.model_validate(c) for c in side["columns"]], side["dialect"])


@dataclass
class Scores:
    per_type_f1: dict[str, float]
    macro_f1: float
    rename_precision: float
    rename_recall: float
    cases: int
    mistakes: list[str]


def _f1(tp: int, fp: int, fn: int) -> float:
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def score(cases: list[dict[str, Any]]) -> Scores:
    """Drifts are matched as (type, column); renames also by their previous name."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    rename_tp = rename_fp = rename_fn = 0
    mistakes = []
    for case in cases:
        before, after = _columns(case["before"]), _columns(case["after"])
        found = detect(before, after, case["after"]["dialect"])
        got = {(d.drift_type, d.column_name) for d in found}
        want = {(e["drift_type"], e["column_name"]) for e in case["expected"]}
        for key in got & want:
            tp[key[0]] += 1
        for key in got - want:
            fp[key[0]] += 1
        for key in want - got:
            fn[key[0]] += 1
        got_renames = {(d.previous_name, d.column_name) for d in found if d.drift_type == "renamed_column"}
        want_renames = {
            (e["previous_name"], e["column_name"])
            for e in case["expected"]
            if e["drift_type"] == "renamed_column"
        }
        rename_tp += len(got_renames & want_renames)
        rename_fp += len(got_renames - want_renames)
        rename_fn += len(want_renames - got_renames)
        if got != want:
            mistakes.append(f"{case['id']}: extra {sorted(got - want)} missing {sorted(want - got)}")
    per_type = {t: _f1(tp[t], fp[t], fn[t]) for t in DRIFT_TYPES}
    return Scores(
        per_type_f1=per_type,
        macro_f1=sum(per_type.values()) / len(per_type),
        rename_precision=rename_tp / max(1, rename_tp + rename_fp),
        rename_recall=rename_tp / max(1, rename_tp + rename_fn),
        cases=len(cases),
        mistakes=mistakes,
    )


def rename_examples(cases: list[dict[str, Any]]) -> tuple[list[tuple[float, ...]], list[int]]:
    """Every (removed, added) candidate pair of the corpus with its label: 1 = a true rename."""
    features: list[tuple[float, ...]] = []
    labels: list[int] = []
    for case in cases:
        before, after = _columns(case["before"]), _columns(case["after"])
        before_names, after_names = {c.name for c in before}, {c.name for c in after}
        removed = [c for c in before if c.name not in after_names]
        added = [c for c in after if c.name not in before_names]
        truth = {
            (e["previous_name"], e["column_name"])
            for e in case["expected"]
            if e["drift_type"] == "renamed_column"
        }
        for candidate in candidates(removed, added):
            features.append(candidate.features)
            labels.append(int((candidate.removed.name, candidate.added.name) in truth))
    return features, labels
