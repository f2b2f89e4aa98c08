"""Fit the rename model's coefficients on the labelled corpus: `python -m tests.drift.fit_renames`.

Paste the printed INTERCEPT and COEFFICIENTS into services/drift/domain/renames.py.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from tests.drift.corpus import load_cases, rename_examples

REGULARISATION_C = 1.0


def fit(cases=None) -> tuple[float, tuple[float, ...]]:
    features, labels = rename_examples(cases if cases is not None else load_cases())
    model = LogisticRegression(C=REGULARISATION_C, max_iter=1_000)
    model.fit(np.array(features), np.array(labels))
    return float(model.intercept_[0]), tuple(float(w) for w in model.coef_[0])


def main() -> None:
    intercept, weights = fit()
    print(f"INTERCEPT = {intercept:.3f}")
    print(f"COEFFICIENTS = ({', '.join(f'{w:.3f}' for w in weights)})")


if __name__ == "__main__":
    main()
