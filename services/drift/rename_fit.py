"""Fit the rename model on the labelled corpora: `python -m aietl.services.drift.rename_fit`.

Writes `services/drift/domain/rename_model.json`: the logistic weights over the features of
`aietl.services.drift.domain.renames`, a Platt calibration fitted on leave-one-project-out scores (so the
confidence is what it is on projects the model has not seen), the decision threshold, and the
sibling words (pairs of words naming two different columns side by side in a table of the corpora).
Needs scikit-learn (the `predict` extra); the drift worker only reads the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aietl.services.drift.domain.names import words_swapped
from aietl.services.drift.domain.renames import (
    FEATURES,
    MODEL_FILE,
    RenameModel,
    TableChange,
    candidate_pairs,
    features,
)
from aietl.services.drift.evaluate import (
    HISTORY,
    SYNTHETIC,
    SYNTHETIC_PROJECT,
    Case,
    by_project,
    case_columns,
    load_cases,
)

REGULARISATION_C = 1.0
# The synthetic corpus is small beside the real histories; weighted up so that its cases (renames
# in tables whose columns are listed in another order, look-alike columns in place) count too.
SYNTHETIC_WEIGHT = 5.0
SIBLING_PROJECTS = 2  # a pair of words one project happens to use side by side is not enough
COOCCURRING = FEATURES.index("cooccurring_swapped")
NO_SIBLINGS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Example:
    """One candidate pair of a case: its features (the sibling one filled per fit), the words it
    swaps (if it does), and whether it is a true rename."""

    project: str
    values: tuple[float, ...]
    swapped: tuple[str, str] | None
    label: int


def _table_key(case: Case, side: str) -> tuple[str, ...]:
    return tuple(c["name"] for c in case[side]["columns"])


@lru_cache(maxsize=100_000)
def _siblings_in(names: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """Word pairs that tell apart two columns of one table (`start_date` and `end_date`)."""
    found = set()
    for i, left in enumerate(names):
        for right in names[i + 1 :]:
            swapped = words_swapped(left, right)
            if swapped:
                found.add(tuple(sorted(swapped)))
    return frozenset(found)  # type: ignore[arg-type]


def siblings_of(cases: Iterable[Case]) -> frozenset[tuple[str, str]]:
    """Sibling words seen in the tables of at least `SIBLING_PROJECTS` projects."""
    projects: dict[tuple[str, str], set[str]] = {}
    for case in cases:
        for side in ("before", "after"):
            for pair in _siblings_in(_table_key(case, side)):
                projects.setdefault(pair, set()).add(case["project"])
    return frozenset(pair for pair, seen in projects.items() if len(seen) >= SIBLING_PROJECTS)


_EXAMPLES: dict[str, list[Example]] = {}


def examples_of(case: Case) -> list[Example]:
    """The candidate pairs of a case, as the detector generates them (cached by case id)."""
    key = f"{case['project']}|{case['id']}"
    if key not in _EXAMPLES:
        before, after = case_columns(case, "before"), case_columns(case, "after")
        truth = {
            (e["previous_name"], e["column_name"])
            for e in case["expected"]
            if e["drift_type"] == "renamed_column"
        }
        change = TableChange.of(before, after)
        found = []
        if change.removed and change.added:
            for old, new in candidate_pairs(change):
                found.append(
                    Example(
                        case["project"],
                        features(change, old, new, NO_SIBLINGS),
                        words_swapped(old.name, new.name),
                        int((old.name, new.name) in truth),
                    )
                )
        _EXAMPLES[key] = found
    return _EXAMPLES[key]


def _matrix(cases: Sequence[Case], siblings: frozenset[tuple[str, str]]):
    import numpy as np

    rows, labels, groups = [], [], []
    for case in cases:
        for example in examples_of(case):
            values = list(example.values)
            values[COOCCURRING] = float(
                example.swapped is not None and tuple(sorted(example.swapped)) in siblings
            )
            rows.append(values)
            labels.append(example.label)
            groups.append(example.project)
    return np.array(rows, dtype=float), np.array(labels), groups


def _logistic(x, y, weights=None):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=REGULARISATION_C, max_iter=2_000)
    model.fit(x, y, sample_weight=weights)
    return float(model.intercept_[0]), tuple(float(w) for w in model.coef_[0])


def fit(cases: Sequence[Case]) -> RenameModel:
    """The uncalibrated model of `cases` (decision at probability 0.5)."""
    import numpy as np

    siblings = siblings_of(cases)
    x, y, groups = _matrix(cases, siblings)
    weight = np.array([SYNTHETIC_WEIGHT if g == SYNTHETIC_PROJECT else 1.0 for g in groups])
    intercept, weights = _logistic(x, y, weight)
    return RenameModel(FEATURES, intercept, weights, (1.0, 0.0), 0.5, siblings)


def _platt(logits: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=1_000)
    model.fit(np.array(logits).reshape(-1, 1), np.array(labels))
    return float(model.coef_[0][0]), float(model.intercept_[0])


def fit_calibrated(cases: Sequence[Case]) -> tuple[RenameModel, dict[str, float]]:
    """Fit on every case; calibrate on the scores each project got from a model fitted without it."""
    logits, labels = [], []
    for project, held_out in by_project(cases).items():
        model = fit([c for c in cases if c["project"] != project])
        x, y, _ = _matrix(held_out, model.siblings)
        for values, label in zip(x, y, strict=True):
            logits.append(model.intercept + sum(w * v for w, v in zip(model.weights, values, strict=True)))
            labels.append(int(label))
    a, b = _platt(logits, labels)
    final = fit(cases)
    # the decision stays where the uncalibrated model puts it (logit 0), now read as probability
    threshold = 1.0 / (1.0 + math.exp(-b))
    model = RenameModel(FEATURES, final.intercept, final.weights, (a, b), threshold, final.siblings)
    calibrated = [1.0 / (1.0 + math.exp(-(a * z + b))) for z in logits]
    return model, {
        "held_out_pairs": len(labels),
        "expected_calibration_error": expected_calibration_error(calibrated, labels),
    }


def expected_calibration_error(
    probabilities: Sequence[float], labels: Sequence[int], bins: int = 10
) -> float:
    """Mean |predicted - observed| over equal-width probability bins, weighted by their size."""
    grouped: dict[int, list[tuple[float, int]]] = {}
    for p, label in zip(probabilities, labels, strict=True):
        grouped.setdefault(min(int(p * bins), bins - 1), []).append((p, label))
    return sum(abs(sum(p for p, _ in items) - sum(y for _, y in items)) for items in grouped.values()) / max(
        1, len(labels)
    )


def to_json(model: RenameModel) -> dict[str, object]:
    return {
        "features": list(model.features),
        "intercept": round(model.intercept, 6),
        "weights": [round(w, 6) for w in model.weights],
        "calibration": [round(model.calibration[0], 6), round(model.calibration[1], 6)],
        "threshold": round(model.threshold, 6),
        "siblings": sorted(list(pair) for pair in model.siblings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--history", type=Path, default=HISTORY)
    parser.add_argument("--synthetic", type=Path, default=SYNTHETIC)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    args = parser.parse_args()
    cases = load_cases(args.history) + load_cases(args.synthetic)
    model, figures = fit_calibrated(cases)
    args.out.write_text(json.dumps(to_json(model), indent=1) + "\n")
    print(f"wrote {args.out}: {len(cases)} cases, {figures}")
    for name, weight in zip(model.features, model.weights, strict=True):
        print(f"  {name:20} {weight:+.3f}")


if __name__ == "__main__":
    main()
