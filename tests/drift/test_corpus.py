"""Detection quality on the labelled corpora, and the rename model's honesty.

- tests/data/drift_history.jsonl.gz: real schema changes replayed from the migration histories of
  many projects (`tests/drift/history_build.py`); the goals of issue 16 hold leave-one-project-out.
- tests/data/drift_corpus.jsonl: the synthetic corpus (`tests/drift/corpus_build.py`); no regression.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import get_args

import pytest

from aietl.services.drift import rename_fit
from aietl.services.drift.domain.renames import stored_model
from aietl.services.drift.evaluate import (
    HISTORY,
    SYNTHETIC,
    by_project,
    detector,
    leave_one_project_out,
    load_cases,
    score,
)
from aietl.shared.events.schema import DriftType

REAL = load_cases(HISTORY)
MADE = load_cases(SYNTHETIC)


def test_history_corpus_is_real_changes_of_many_projects() -> None:
    projects = by_project(REAL)
    assert len(projects) >= 20 and "saleor/saleor" not in projects  # saleor is kept for evaluation
    assert {case["source"] for case in REAL} == {"django", "rails", "alembic"}
    labels = Counter(e["drift_type"] for case in REAL for e in case["expected"])
    assert labels["renamed_column"] >= 300 and labels["type_change"] >= 300
    assert (
        sum(
            1
            for project in projects.values()
            if any(e["drift_type"] == "renamed_column" for case in project for e in case["expected"])
        )
        >= 15
    )


def test_synthetic_corpus_covers_every_drift_type_and_dialect() -> None:
    assert len(MADE) >= 200
    labels = Counter(e["drift_type"] for case in MADE for e in case["expected"])
    assert set(labels) == set(get_args(DriftType))
    dialects = {case[side]["dialect"] for case in MADE for side in ("before", "after")}
    assert dialects == {"postgres", "mysql", "clickhouse", "sqlite", "generic"}
    assert sum(1 for case in MADE if not case["expected"]) >= 10  # no-drift cases


def test_stored_model_beats_the_name_diff_on_real_histories() -> None:
    stored, plain = score(REAL, detector()), score(REAL, detector(infer_renames=False))
    print(f"\nreal, stored model: {stored.summary()}\nreal, name diff: {plain.summary()}")
    assert stored.macro_f1 >= 0.97 and stored.exact_rate >= 0.98
    assert stored.rename_precision >= 0.95 and stored.rename_recall >= 0.93
    assert stored.plain_exact_rate >= 0.995  # hardly any invented rename (the name diff: 0.9998)
    assert stored.macro_f1 > plain.macro_f1 + 0.15 and stored.exact_rate > plain.exact_rate


# The detector before the rename model (commit d805e13) on the synthetic corpus's original 406 cases.
BEFORE_MACRO_F1, BEFORE_RENAME_F1, BEFORE_EXACT = 0.962, 0.957, 0.963


def test_no_regression_on_the_synthetic_corpus() -> None:
    original = [case for case in MADE if not case["id"].startswith("moved")]
    scores = score(original, detector())
    print(f"\nsynthetic (original cases), stored model: {scores.summary()}")
    precision, recall = scores.rename_precision, scores.rename_recall
    rename_f1 = 2 * precision * recall / (precision + recall)
    assert scores.macro_f1 >= BEFORE_MACRO_F1 and rename_f1 >= BEFORE_RENAME_F1
    assert scores.exact_rate >= BEFORE_EXACT and scores.rename_recall >= 0.95
    everything = score(MADE, detector())
    assert everything.macro_f1 >= 0.96 and everything.rename_precision >= 0.95


def test_leave_one_project_out_meets_the_goals_and_confidence_is_calibrated() -> None:
    """Each project scored by a model fitted without it: the figure that says what a new user's
    tables get. The stored calibration was fitted on such held-out scores: pairs scored p by a
    model that never saw their project are renames about p of the time."""
    folds = {}

    def fit(training):
        project = next(p for p in by_project(REAL) if all(c["project"] != p for c in training))
        folds[project] = rename_fit.fit(training)
        return folds[project]

    pooled, each = leave_one_project_out(REAL, fit, training_extra=MADE)
    print(f"\nleave-one-project-out: {pooled.summary()}")
    assert pooled.macro_f1 >= 0.95 and pooled.exact_rate >= 0.95
    assert pooled.rename_precision >= 0.95 and pooled.rename_recall >= 0.90
    assert pooled.plain_exact_rate >= 0.99  # a case without a rename stays right
    assert len(each) == len(folds) == len(by_project(REAL))

    a, b = stored_model().calibration
    probabilities, labels = [], []
    for project, held_out in by_project(REAL).items():
        fold = folds[project]
        x, y, _ = rename_fit._matrix(held_out, fold.siblings)
        for values, label in zip(x, y, strict=True):
            z = fold.intercept + sum(w * v for w, v in zip(fold.weights, values, strict=True))
            probabilities.append(1 / (1 + math.exp(-(a * z + b))))
            labels.append(int(label))
    error = rename_fit.expected_calibration_error(probabilities, labels)
    print(f"held-out calibration error {error:.4f} over {len(labels)} candidate pairs")
    assert error < 0.06


def test_stored_model_is_the_fit_of_the_corpora() -> None:
    fitted = rename_fit.fit(REAL + MADE)
    stored = stored_model()
    assert stored.features == fitted.features and stored.siblings == fitted.siblings
    assert stored.intercept == pytest.approx(fitted.intercept, abs=0.01)
    assert stored.weights == pytest.approx(fitted.weights, abs=0.01)
