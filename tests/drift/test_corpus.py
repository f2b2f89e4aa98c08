"""Detection quality on the labelled corpus (tests/data/drift_corpus.jsonl) and rename calibration.

Goals (issue 3): macro-F1 over drift types >= 0.95, rename precision >= 0.90 and recall >= 0.80.
The rename model's coefficients are fitted on this corpus; the cross-validated figures (fitted on
one half, measured on the other) say how well it carries to cases it has not seen.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from services.drift.domain import renames
from tests.drift.corpus import DRIFT_TYPES, load_cases, rename_examples, score
from tests.drift.fit_renames import fit

CASES = load_cases()


def _report(label: str, scores) -> str:
    per_type = ", ".join(f"{t}={f:.3f}" for t, f in scores.per_type_f1.items())
    return (
        f"{label}: {scores.cases} cases, macro-F1 {scores.macro_f1:.3f} ({per_type}); "
        f"renames precision {scores.rename_precision:.3f} recall {scores.rename_recall:.3f}"
    )


def test_corpus_covers_every_drift_type_and_dialect() -> None:
    assert len(CASES) >= 200
    labels = Counter(e["drift_type"] for case in CASES for e in case["expected"])
    assert set(labels) == set(DRIFT_TYPES)
    dialects = {case[side]["dialect"] for case in CASES for side in ("before", "after")}
    assert dialects == {"postgres", "mysql", "clickhouse", "sqlite", "generic"}
    assert sum(1 for case in CASES if not case["expected"]) >= 10  # no-drift cases
    assert sum(1 for case in CASES if case["id"].startswith(("nonrename", "datanonrename"))) >= 40


def test_detection_meets_the_goals_on_the_corpus() -> None:
    scores = score(CASES)
    print(_report("corpus", scores))
    assert scores.macro_f1 >= 0.95, _report("corpus", scores)
    assert scores.rename_precision >= 0.90, _report("corpus", scores)
    assert scores.rename_recall >= 0.80, _report("corpus", scores)


def test_cross_validated_quality(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fit on even cases, score odd ones, and the other way round."""
    folds = [CASES[0::2], CASES[1::2]]
    results = []
    for train, held_out in ((folds[0], folds[1]), (folds[1], folds[0])):
        intercept, weights = fit(train)
        monkeypatch.setattr(renames, "INTERCEPT", intercept)
        monkeypatch.setattr(renames, "COEFFICIENTS", weights)
        results.append(score(held_out))
    for index, scores in enumerate(results):
        print(_report(f"held-out fold {index}", scores))
        assert scores.macro_f1 >= 0.93 and scores.rename_precision >= 0.88 and scores.rename_recall >= 0.80


def test_stored_coefficients_are_the_fit_of_the_corpus() -> None:
    intercept, weights = fit(CASES)
    stored = np.array([renames.INTERCEPT, *renames.COEFFICIENTS])
    refit = np.array([intercept, *weights])
    assert np.allclose(stored, refit, atol=0.01), (
        f"re-fit gives INTERCEPT={intercept:.3f} COEFFICIENTS={weights}"
    )


def test_rename_confidence_is_calibrated() -> None:
    """Among pairs scored p, about p are renames: expected calibration error below 0.08."""
    features, labels = rename_examples(CASES)
    probabilities = [renames.probability(values) for values in features]
    bins: dict[int, list[tuple[float, int]]] = {}
    for p, label in zip(probabilities, labels, strict=True):
        bins.setdefault(min(int(p * 5), 4), []).append((p, label))
    error = sum(
        len(items) * abs(sum(p for p, _ in items) / len(items) - sum(y for _, y in items) / len(items))
        for items in bins.values()
    ) / len(labels)
    brier = sum((p - y) ** 2 for p, y in zip(probabilities, labels, strict=True)) / len(labels)
    log_loss = -sum(math.log(p if y else 1 - p) for p, y in zip(probabilities, labels, strict=True)) / len(
        labels
    )
    print(
        f"rename calibration: ECE {error:.3f}, Brier {brier:.3f}, log-loss {log_loss:.3f}, "
        f"{len(labels)} candidate pairs"
    )
    assert error < 0.08 and brier < 0.1
