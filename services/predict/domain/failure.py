"""Failure risk: a random forest across pipelines, time-split, isotonic-calibrated on a later slice.

Explanations come from the model and the pipeline's own data: a factor's threshold is the value
healthy history rarely goes past (95th/5th percentile of runs not followed by a failure, on the
side where failures lie), and its weight is how much the predicted probability falls when that one
feature is set back to its healthy median.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score

from services.predict.domain import InsufficientHistory
from services.predict.domain.features import FEATURES, dataset, pipeline_features

MIN_POSITIVES = 20
MIN_NEGATIVES = 50


@dataclass(frozen=True)
class FactorRule:
    feature: str
    direction: int  # +1: higher is riskier, -1: lower is riskier
    threshold: float
    healthy_median: float


@dataclass(frozen=True)
class Factor:
    factor: str
    current_value: float
    threshold: float
    severity: str
    contribution: float


@dataclass
class FailureModel:
    horizon_hours: float
    calibrated: CalibratedClassifierCV
    forest: RandomForestClassifier
    rules: dict[str, FactorRule]
    trained_at: datetime
    training_runs: int
    positives: int
    validation_auc: float | None

    def tree_probabilities(self, features: pd.DataFrame) -> np.ndarray:
        """Failure probability of every tree for every row, shape (trees, rows).

        Walks the fitted trees directly: the forest's own `predict_proba` pays a per-call
        scheduling cost that dominates single-pipeline latency.
        """
        return self._votes(features[list(FEATURES)].to_numpy(dtype=float))

    def _votes(self, matrix: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(matrix, dtype=np.float32)
        votes = np.stack(
            [tree.tree_.predict(rows).reshape(len(rows), -1) for tree in self.forest.estimators_]
        )
        return votes[:, :, 1] / votes.sum(axis=2)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """The isotonic map fitted on the later time slice, applied to forest probabilities."""
        calibrator = self.calibrated.calibrated_classifiers_[0].calibrators[0]
        return np.clip(calibrator.predict(raw), 0.0, 1.0)

    def probabilities(self, features: pd.DataFrame) -> np.ndarray:
        return self.calibrate(self.tree_probabilities(features).mean(axis=0))

    def tree_agreement(self, features: pd.DataFrame) -> float:
        """Share of the forest's trees that vote like the calibrated verdict (risk >= 0.5 or not)."""
        votes = self.tree_probabilities(features.iloc[:1])[:, 0]
        verdict = self.calibrate(np.array([votes.mean()]))[0] >= 0.5
        return float(np.mean((votes >= 0.5) == verdict))

    def factors(self, features: pd.DataFrame) -> list[Factor]:
        """Features past their healthy threshold or carrying the prediction, largest effect first."""
        values = features[list(FEATURES)].to_numpy(dtype=float)[0]
        batch = np.repeat(values[None, :], len(FEATURES) + 1, axis=0)
        for i, name in enumerate(FEATURES):
            batch[i + 1, i] = self.rules[name].healthy_median  # "what if only this one were healthy"
        probabilities = self.calibrate(self._votes(batch).mean(axis=0))
        drops = probabilities[0] - probabilities[1:]
        found = []
        for name, drop, value in zip(FEATURES, drops, values, strict=True):
            rule = self.rules[name]
            beyond = not np.isnan(value) and (value - rule.threshold) * rule.direction > 0
            if drop < 0.02 and not beyond:
                continue
            found.append(
                Factor(
                    factor=name,
                    current_value=round(value, 4) if not np.isnan(value) else float("nan"),
                    threshold=round(rule.threshold, 4),
                    severity=severity_of(drop * 2 if beyond else drop),
                    contribution=round(float(drop), 4),
                )
            )
        return sorted(found, key=lambda f: -f.contribution)


def severity_of(probability: float) -> str:
    if probability >= 0.8:
        return "critical"
    if probability >= 0.5:
        return "high"
    if probability >= 0.2:
        return "medium"
    return "low"


def time_split(frame: pd.DataFrame, fractions: tuple[float, ...], purge_hours: float) -> list[pd.DataFrame]:
    """Consecutive slices of time; each slice drops rows whose label window reaches the next slice."""
    times = frame["time"]
    start, end = times.min(), times.max()
    edges = [start + (end - start) * f for f in (0.0, *fractions, 1.0)]
    purge = pd.Timedelta(hours=purge_hours)
    slices = []
    for i in range(len(edges) - 1):
        last = i == len(edges) - 2
        upper = edges[i + 1] if last else edges[i + 1] - purge
        mask = (times >= edges[i]) & ((times <= upper) if last else (times < upper))
        slices.append(frame[mask])
    return slices


def fit(
    runs: pd.DataFrame,
    horizon_hours: float,
    *,
    now: datetime,
    trees: int = 150,
    calibration_share: float = 0.25,
    seed: int = 0,
) -> FailureModel:
    """Train on the earlier part of time, calibrate on the later part (purged by the horizon)."""
    data = dataset(runs, horizon_hours).dropna(subset=["label"])
    positives = int(data["label"].sum())
    if positives < MIN_POSITIVES or len(data) - positives < MIN_NEGATIVES:
        raise InsufficientHistory(
            f"the failure model needs at least {MIN_POSITIVES} runs followed by a failure within "
            f"{horizon_hours:g} h and {MIN_NEGATIVES} runs that were not; stored history has {positives} "
            f"and {len(data) - positives}",
            have=positives,
            need=MIN_POSITIVES,
            unit="runs followed by a failure",
        )
    train, calibration = time_split(data, (1 - calibration_share,), horizon_hours)
    if train["label"].nunique() < 2 or calibration["label"].nunique() < 2:
        train, calibration = data, data  # too little spread over time to split: calibrate in-sample
    forest = RandomForestClassifier(
        n_estimators=trees,
        min_samples_leaf=10,
        max_features="sqrt",
        class_weight="balanced_subsample",
        n_jobs=1,
        random_state=seed,
    )
    forest.fit(train[list(FEATURES)].to_numpy(), train["label"].to_numpy())
    calibrated = CalibratedClassifierCV(FrozenEstimator(forest), method="isotonic")
    calibrated.fit(calibration[list(FEATURES)].to_numpy(), calibration["label"].to_numpy())
    raw = forest.predict_proba(calibration[list(FEATURES)].to_numpy())[:, 1]
    auc = roc_auc_score(calibration["label"], raw) if calibration["label"].nunique() == 2 else None
    return FailureModel(
        horizon_hours=horizon_hours,
        calibrated=calibrated,
        forest=forest,
        rules=_rules(train),
        trained_at=now,
        training_runs=len(data),
        positives=positives,
        validation_auc=None if auc is None else float(auc),
    )


def _rules(train: pd.DataFrame) -> dict[str, FactorRule]:
    healthy, failing = train[train["label"] == 0], train[train["label"] == 1]
    rules = {}
    for name in FEATURES:
        healthy_values, failing_values = healthy[name].dropna(), failing[name].dropna()
        median = float(healthy_values.median()) if len(healthy_values) else 0.0
        direction = 1 if failing_values.empty or failing_values.median() >= median else -1
        quantile = 0.95 if direction > 0 else 0.05
        threshold = float(healthy_values.quantile(quantile)) if len(healthy_values) else median
        rules[name] = FactorRule(name, direction, threshold, median)
    return rules


def latest_features(runs: pd.DataFrame) -> pd.DataFrame:
    """Features of a pipeline as of its latest run (one row)."""
    return pipeline_features(runs).iloc[[-1]]


MAX_HAZARD_PROBABILITY = 0.99


def prevention_window_hours(probability: float, horizon_hours: float, features: pd.DataFrame) -> float:
    """Median time to failure under a constant hazard fitted to the probability, capped by memory trend.

    Zero only while the pipeline is failing; a calibrated probability of 1 means "within the
    horizon", not "now", so it is held just below 1.
    """
    if float(features["consecutive_failures"].iloc[0]) > 0:
        return 0.0
    if probability <= 0:
        return float(horizon_hours * 10)
    hazard = -np.log1p(-min(probability, MAX_HAZARD_PROBABILITY)) / horizon_hours
    hours = float(np.log(2) / hazard)
    headroom, trend = float(features["memory_headroom"].iloc[0]), float(features["memory_trend"].iloc[0])
    if np.isfinite(headroom) and np.isfinite(trend) and trend > 0:
        hours = min(hours, max(0.0, headroom / trend * 24))
    return round(hours, 1)


ACTIONS = {
    "memory_headroom": "Raise the memory limit or reduce batch size; memory is close to the limit.",
    "memory_trend": "Look for a memory leak: usage grows day over day; restart workers as a stopgap.",
    "duration_drift": "Profile the slow step: runs take longer than their usual duration.",
    "duration_trend_6h": "Check upstream latency and locks: the latest runs slowed down sharply.",
    "error_rate_24h": "Inspect rejected rows: the error rate is above its usual level.",
    "error_rate_trend": "Review the latest schema or data changes: errors are rising.",
    "failure_rate_24h": "Triage the recent failures before the next scheduled runs.",
    "recent_failures": "Triage the recent failures before the next scheduled runs.",
    "consecutive_failures": "The pipeline is failing now: fix the cause, then replay missed runs.",
    "hours_since_last_success": "No success for a long time: check credentials, sources and the schedule.",
    "volume_change": "Verify the source: data volume departs from its usual level.",
    "cpu_drift": "Check for CPU contention or a heavier query plan.",
    "run_frequency_change": "Check the scheduler: runs are missing or duplicated.",
}


def recommended_actions(factors: list[Factor]) -> list[str]:
    actions: list[str] = []
    for factor in factors:
        action = ACTIONS.get(factor.factor)
        if action and action not in actions:
            actions.append(action)
    return actions[:4] or ["No action needed: keep monitoring."]


def describe(pipeline_id: str, probability: float, horizon_hours: float, factors: list[Factor]) -> str:
    head = f"{probability:.0%} probability that pipeline {pipeline_id!r} fails within {horizon_hours:g} h"
    if not factors:
        return head + "; no indicator is outside its healthy range."
    named = ", ".join(f.factor.replace("_", " ") for f in factors[:3])
    return f"{head}; main drivers: {named}."
