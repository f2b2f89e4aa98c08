"""Rename detection: pair a removed and an added column when the evidence says they are one.

Each candidate pair is described by a few features; a logistic model turns them into the
probability that the pair is a rename. The coefficients were fitted offline on the labelled corpus
(`tests/data/drift_corpus.jsonl`, see `tests/drift/test_calibration.py`, which re-fits them and
checks that the stored ones are as good and well calibrated), so `confidence_score` is a
probability: of the pairs scored 0.8, about 8 in 10 are renames on that corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.drift.domain.names import name_similarity, substitution
from services.drift.domain.schema import Column
from services.drift.domain.types import classify

FEATURES = ("name", "substitution", "type", "position", "samples", "has_samples", "only_pair")
# Fitted by `python -m tests.drift.fit_renames` (logistic regression, L2, C=1.0) on the corpus.
INTERCEPT = -0.480
COEFFICIENTS = (1.268, -3.668, 1.698, 0.635, 2.961, -0.766, 0.628)
RENAME_THRESHOLD = 0.5
TYPE_EVIDENCE = {"same": 1.0, "widening": 0.75, "narrowing": 0.4, "incompatible": 0.0}


@dataclass(frozen=True, slots=True)
class Candidate:
    removed: Column
    added: Column
    features: tuple[float, ...]
    probability: float


def sample_overlap(left: Sequence[object], right: Sequence[object]) -> float:
    """Jaccard overlap of the sample values (as text, so 1 and '1' agree)."""
    a, b = {str(v) for v in left if v is not None}, {str(v) for v in right if v is not None}
    return len(a & b) / len(a | b) if a and b else 0.0


def features(removed: Column, added: Column, only_pair: bool) -> tuple[float, ...]:
    has_samples = bool(removed.samples) and bool(added.samples)
    return (
        name_similarity(removed.name, added.name),
        substitution(removed.name, added.name),
        TYPE_EVIDENCE[classify(removed.sql_type, added.sql_type)],
        math.exp(-abs(removed.position - added.position) / 3),
        sample_overlap(removed.samples, added.samples) if has_samples else 0.0,
        1.0 if has_samples else 0.0,
        1.0 if only_pair else 0.0,
    )


def probability(values: Sequence[float]) -> float:
    """The calibrated probability that a candidate pair is a rename."""
    z = INTERCEPT + sum(w * x for w, x in zip(COEFFICIENTS, values, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def candidates(removed: Sequence[Column], added: Sequence[Column]) -> list[Candidate]:
    """Every (removed, added) pair with its rename probability, most likely first."""
    only_pair = len(removed) == 1 and len(added) == 1
    scored = []
    for old in removed:
        for new in added:
            values = features(old, new, only_pair)
            scored.append(Candidate(old, new, values, probability(values)))
    scored.sort(key=lambda c: (-c.probability, c.removed.position, c.added.position))
    return scored


def pair_renames(scored: Sequence[Candidate]) -> list[Candidate]:
    """Greedy one-to-one matching of the likeliest pairs above the threshold."""
    used_old: set[str] = set()
    used_new: set[str] = set()
    chosen = []
    for candidate in scored:
        if candidate.probability < RENAME_THRESHOLD:
            break
        if candidate.removed.name in used_old or candidate.added.name in used_new:
            continue
        used_old.add(candidate.removed.name)
        used_new.add(candidate.added.name)
        chosen.append(candidate)
    return chosen
