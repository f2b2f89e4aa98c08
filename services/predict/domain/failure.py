"""Failure risk: one random forest per horizon of a small grid, validated on later time, Platt-calibrated.

- Training is time-ordered: each forest first learns from the earlier 75% of the window and is
  scored on the later 25% (rows whose label window reaches into the validation slice are purged),
  so no figure sees the future; the served forest is then refitted on all of it. The version
  records ROC-AUC, PR-AUC and recall at 1/5/10% false-positive rate of every horizon, beside the
  "last run failed" baseline on the same rows.
- Calibration is Platt scaling on the validation slice (a logistic map of the forest's score):
  strictly increasing, so pipelines with distinct scores keep distinct probabilities and their
  order; isotonic regression on few positives collapses them into ties.
- Horizons between grid points are answered from the survival curve the grid draws: cumulative
  hazard -log(1 - p) interpolated linearly in time and never decreasing with the horizon.
- Factors are path contributions of the forest (see `forest.py`) for this pipeline: only features
  that push its risk up are listed, largest first, with the value, the pipeline's usual value and
  the threshold healthy history rarely goes past.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aietl.services.predict.domain import InsufficientHistory
from aietl.services.predict.domain import forest as forest_format
from aietl.services.predict.domain.features import (
    FEATURES,
    HOURS_CAP,
    label_column,
    pipeline_features,
    training_table,
)
from aietl.services.predict.domain.forest import FlatForest

if TYPE_CHECKING:  # sklearn costs 1.7 s to import: only training and evaluation need it
    from sklearn.ensemble import RandomForestClassifier

MIN_POSITIVES = 20
MIN_NEGATIVES = 50
VALIDATION_SHARE = 0.25
GRID_HOURS = (6, 24, 72, 168)
FPR_POINTS = (0.01, 0.05, 0.10)
RANKING_FIGURES = (
    "roc_auc",
    "pr_auc",
    *(f"recall_at_{point:.0%}_fpr".replace("%", "pct") for point in FPR_POINTS),
)
MIN_FACTOR_CONTRIBUTION = 0.01  # a factor must add at least one point of probability
MAX_FACTORS = 5
SCORE_EPSILON = 1e-4
FORMAT_VERSION = 1


def horizon_grid(max_hours: float, required: Sequence[float] = ()) -> tuple[float, ...]:
    """Horizons a model version is trained for: the grid below the maximum, the maximum, `required`."""
    grid = {float(h) for h in GRID_HOURS if h < max_hours} | {float(max_hours)}
    return tuple(sorted(grid | {float(h) for h in required if h <= max_hours}))


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float] | None:
    """ROC-AUC, PR-AUC and recall at 1/5/10% false-positive rate; None without both classes."""
    labels = np.asarray(labels, dtype=float)
    if len(np.unique(labels)) < 2:
        return None
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    result = {
        "roc_auc": round(float(roc_auc_score(labels, scores)), 4),
        "pr_auc": round(float(average_precision_score(labels, scores)), 4),
    }
    for name, point in zip(RANKING_FIGURES[2:], FPR_POINTS, strict=True):
        result[name] = round(float(np.interp(point, fpr, tpr)), 4)
    result["positive_share"] = round(float(labels.mean()), 4)
    return result


@dataclass(frozen=True)
class Calibration:
    """Platt scaling: probability = sigmoid(slope * logit(score) + intercept), slope > 0."""

    slope: float = 1.0
    intercept: float = 0.0

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> Calibration:
        """Maximum likelihood with Platt's smoothed targets (no probability of exactly 0 or 1)."""
        from sklearn.linear_model import LogisticRegression

        x = _logit(scores).reshape(-1, 1)
        positives, negatives = float(labels.sum()), float(len(labels) - labels.sum())
        targets = np.where(labels > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
        # Logistic regression on soft targets: each row twice, weighted by its target.
        stacked = np.vstack([x, x])
        classes = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
        weights = np.concatenate([targets, 1 - targets])
        model = LogisticRegression(C=1e6).fit(stacked, classes, sample_weight=weights)
        slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
        if not slope > 0:  # the scores carry no usable order: keep them as they are
            return cls()
        return cls(slope, intercept)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.slope * _logit(scores) + self.intercept)))


def _logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(scores, dtype=float), SCORE_EPSILON, 1 - SCORE_EPSILON)
    return np.log(clipped / (1 - clipped))


@dataclass(frozen=True)
class FactorRule:
    feature: str
    direction: int  # +1: higher is riskier, -1: lower is riskier
    threshold: float
    healthy_median: float


@dataclass(frozen=True)
class Factor:
    factor: str
    current_value: float | None
    usual_value: float | None
    threshold: float
    beyond_threshold: bool
    severity: str
    contribution: float


@dataclass(frozen=True)
class HorizonModel:
    horizon_hours: float
    forest: FlatForest
    calibration: Calibration
    rules: dict[str, FactorRule]
    metrics: dict[str, object]

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        return self.calibration(self.forest.scores(matrix))


@dataclass(frozen=True)
class SurvivalCurve:
    """Cumulative hazard -log(1 - p) at the grid horizons (never decreasing)."""

    grid: tuple[float, ...]
    hazard: np.ndarray

    def probability(self, horizon_hours: float) -> float:
        """P(failure within `horizon_hours`): hazard interpolated linearly in time between grid points,
        constant before the first one."""
        if horizon_hours <= self.grid[0]:
            value = self.hazard[0] * horizon_hours / self.grid[0]
        else:
            value = float(np.interp(horizon_hours, self.grid, self.hazard))
        return float(-np.expm1(-value))

    def median_hours(self) -> float:
        """Median time to failure (P = 0.5); past the grid at the last grid point's constant hazard."""
        half, grid, hazard = np.log(2), self.grid, self.hazard
        if hazard[-1] <= 0:
            return float(HOURS_CAP)
        if hazard[0] >= half:
            return float(grid[0] * half / hazard[0])
        if hazard[-1] < half:
            return float(min(HOURS_CAP, grid[-1] * half / hazard[-1]))
        return float(np.interp(half, hazard, grid))


@dataclass
class FailureModel:
    horizons: dict[float, HorizonModel]
    trained_at: datetime
    window_start: datetime
    window_end: datetime
    training_runs: int
    positives: int
    data_hash: str
    metrics: dict[str, object] = field(default_factory=dict)

    @property
    def max_horizon(self) -> float:
        return max(self.horizons)

    def curve(self, row: np.ndarray) -> SurvivalCurve:
        """The pipeline's survival curve: P(failure within h) at every grid horizon, one walk each."""
        grid = sorted(self.horizons)
        points = np.array([self.horizons[h].probabilities(row[None, :])[0] for h in grid])
        hazard = np.maximum.accumulate(-np.log1p(-np.minimum(points, 1 - 1e-9)))  # never decreasing in time
        return SurvivalCurve(tuple(grid), hazard)

    def probability(self, row: np.ndarray, horizon_hours: float) -> float:
        return self.curve(row).probability(horizon_hours)

    def explaining_model(self, horizon_hours: float) -> HorizonModel:
        """The grid model whose horizon is the nearest at or above the asked one."""
        return self.horizons[min(h for h in self.horizons if h >= horizon_hours)]

    def factors(self, row: np.ndarray, usual: np.ndarray, horizon_hours: float) -> list[Factor]:
        """Features that push this pipeline's risk up, largest contribution first.

        From the grid model at or above the horizon: its contributions add up to its probability
        minus its base probability (what it says before looking at any feature).
        """
        model = self.explaining_model(horizon_hours)
        scores, contribution_rows = model.forest.contributions(row[None, :])
        score, contributions = float(scores[0]), contribution_rows[0]
        base_score = model.forest.base_score
        probability = float(model.calibration(np.array([score]))[0])
        base_probability = float(model.calibration(np.array([base_score]))[0])
        # Contributions add up to score - base in the forest's units; map them to probability (the
        # secant of the calibration; its slope where the two are too close to divide).
        if abs(score - base_score) > 1e-3:
            scale = (probability - base_probability) / (score - base_score)
        else:
            step = 1e-3
            scale = float(np.diff(model.calibration(np.array([score - step, score + step])))[0] / (2 * step))
        found: list[Factor] = []
        for index in np.argsort(-contributions):
            contribution = float(contributions[index] * scale)
            if contribution < MIN_FACTOR_CONTRIBUTION or len(found) == MAX_FACTORS:
                break
            name = FEATURES[index]
            rule = model.rules[name]
            value = float(row[index])
            beyond = bool(np.isfinite(value) and (value - rule.threshold) * rule.direction > 0)
            found.append(
                Factor(
                    factor=name,
                    current_value=_rounded(value),
                    usual_value=_rounded(float(usual[index])),
                    threshold=round(rule.threshold, 4),
                    beyond_threshold=beyond,
                    severity=factor_severity(contribution),
                    contribution=round(contribution, 4),
                )
            )
        return found

    def summary(self) -> dict[str, object]:
        return {
            "trained_at": self.trained_at,
            "training_window": [self.window_start, self.window_end],
            "training_runs": self.training_runs,
            "positives": self.positives,
            "horizons_hours": sorted(self.horizons),
            "data_hash": self.data_hash,
        }

    # --- storage: arrays and JSON only ---
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "features": list(FEATURES),
            "trained_at": self.trained_at.isoformat(),
            "window": [self.window_start.isoformat(), self.window_end.isoformat()],
            "training_runs": self.training_runs,
            "positives": self.positives,
            "data_hash": self.data_hash,
            "metrics": self.metrics,
            "horizons": [],
        }
        for position, (horizon, model) in enumerate(sorted(self.horizons.items())):
            arrays |= model.forest.arrays(f"h{position}.")
            meta["horizons"].append(
                {
                    "hours": horizon,
                    "calibration": [model.calibration.slope, model.calibration.intercept],
                    "rules": [
                        [r.feature, r.direction, r.threshold, r.healthy_median] for r in model.rules.values()
                    ],
                    "metrics": model.metrics,
                }
            )
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return forest_format.dump(arrays)

    @classmethod
    def from_bytes(cls, blob: bytes) -> FailureModel:
        arrays = forest_format.load(blob)
        meta = json.loads(arrays["meta"].tobytes())
        if meta.get("format") != FORMAT_VERSION or meta.get("features") != list(FEATURES):
            raise ValueError("stored model was trained with other features; it must be retrained")
        horizons = {}
        for position, item in enumerate(meta["horizons"]):
            rules = {r[0]: FactorRule(str(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in item["rules"]}
            horizons[float(item["hours"])] = HorizonModel(
                horizon_hours=float(item["hours"]),
                forest=FlatForest.from_arrays(arrays, f"h{position}."),
                calibration=Calibration(float(item["calibration"][0]), float(item["calibration"][1])),
                rules=rules,
                metrics=item["metrics"],
            )
        return cls(
            horizons=horizons,
            trained_at=datetime.fromisoformat(meta["trained_at"]),
            window_start=datetime.fromisoformat(meta["window"][0]),
            window_end=datetime.fromisoformat(meta["window"][1]),
            training_runs=int(meta["training_runs"]),
            positives=int(meta["positives"]),
            data_hash=str(meta["data_hash"]),
            metrics=meta["metrics"],
        )


def _rounded(value: float) -> float | None:
    return round(value, 4) if np.isfinite(value) else None


def factor_severity(contribution: float) -> str:
    """How much of the probability this factor adds."""
    if contribution >= 0.25:
        return "critical"
    if contribution >= 0.10:
        return "high"
    if contribution >= 0.04:
        return "medium"
    return "low"


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


def data_hash(runs: pd.DataFrame) -> str:
    """Fingerprint of the training data (same runs, same hash), recorded with each model version."""
    ordered = runs.sort_values(["project_id", "pipeline_id", "run_id"]).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()).hexdigest()


def new_forest(trees: int, seed: int) -> RandomForestClassifier:
    """The shipped learner (it won the comparison in docs/predict.md)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=trees,
        min_samples_leaf=30,
        max_features="sqrt",
        class_weight="balanced_subsample",
        n_jobs=1,
        random_state=seed,
    )


def train(
    runs: pd.DataFrame,
    horizons: Sequence[float],
    *,
    now: datetime,
    trees: int = 100,
    seed: int = 0,
    table: pd.DataFrame | None = None,
) -> FailureModel:
    """One validated, calibrated forest per horizon (raises InsufficientHistory when it cannot be honest)."""
    table = training_table(runs, horizons) if table is None else table
    models: dict[float, HorizonModel] = {}
    refusals: list[InsufficientHistory] = []
    for horizon in horizons:
        try:
            models[float(horizon)] = _train_horizon(table, float(horizon), trees, seed)
        except InsufficientHistory as refusal:
            refusals.append(refusal)  # a long horizon may need more history than a short one
    if not models:
        raise refusals[0]
    reference_positives = max(int(m.metrics["positives"]) for m in models.values())  # type: ignore[call-overload]
    return FailureModel(
        horizons=models,
        trained_at=now,
        window_start=runs["started_at"].min().to_pydatetime(),
        window_end=runs["started_at"].max().to_pydatetime(),
        training_runs=len(table),
        positives=reference_positives,
        data_hash=data_hash(runs),
        metrics={f"{h:g}h": m.metrics for h, m in models.items()},
    )


def _train_horizon(table: pd.DataFrame, horizon: float, trees: int, seed: int) -> HorizonModel:
    label = label_column(horizon)
    data = table.dropna(subset=[label])
    positives = int(data[label].sum())
    _require(positives, len(data) - positives, horizon, "stored history")
    train_rows, validation = time_split(data, (1 - VALIDATION_SHARE,), horizon)
    _require(
        int(train_rows[label].sum()),
        int(len(train_rows) - train_rows[label].sum()),
        horizon,
        f"the training slice (earlier {1 - VALIDATION_SHARE:.0%} of time, before the validation slice)",
        minimum_positives=1,
    )
    _require(
        int(validation[label].sum()),
        int(len(validation) - validation[label].sum()),
        horizon,
        f"the validation slice (latest {VALIDATION_SHARE:.0%} of time)",
        minimum_positives=1,
    )
    fitted = new_forest(trees, seed).fit(
        train_rows[list(FEATURES)].to_numpy(dtype=float), train_rows[label].to_numpy()
    )
    flat = FlatForest.from_random_forest(fitted)
    scores = flat.scores(validation[list(FEATURES)].to_numpy(dtype=float))
    labels = validation[label].to_numpy()
    metrics: dict[str, object] = {
        "positives": positives,
        "training_rows": len(train_rows),
        "validation_rows": len(validation),
        "validation_from": validation["time"].min().isoformat(),
        **(ranking_metrics(labels, scores) or {}),
        "baseline_last_run_failed": ranking_metrics(
            labels, (validation["consecutive_failures"] > 0).to_numpy(dtype=float)
        ),
    }
    calibration = Calibration.fit(scores, labels)
    # The served forest learns from every labelled row, the latest included (the validation slice
    # is the most recent behaviour); it keeps the calibration and the figures of its validated twin.
    refit = new_forest(trees, seed).fit(data[list(FEATURES)].to_numpy(dtype=float), data[label].to_numpy())
    return HorizonModel(
        horizon, FlatForest.from_random_forest(refit), calibration, _rules(data, label), metrics
    )


def _require(
    positives: int, negatives: int, horizon: float, where: str, minimum_positives: int = MIN_POSITIVES
) -> None:
    if positives < minimum_positives or negatives < (MIN_NEGATIVES if minimum_positives > 1 else 1):
        raise InsufficientHistory(
            f"the failure model needs at least {minimum_positives} runs followed by a failure within "
            f"{horizon:g} h in {where}, and runs that were not; it has {positives} and {negatives}",
            have=positives,
            need=minimum_positives,
            unit="runs followed by a failure",
        )


def _rules(train_rows: pd.DataFrame, label: str) -> dict[str, FactorRule]:
    """Per feature: the side failures lie on, and the value 95% of healthy history stays within.

    Healthy: not followed by a failure within the horizon and no failure in the 24 h before
    either (a failed run's own errors are not "normal").
    """
    healthy = train_rows[(train_rows[label] == 0) & (train_rows["failure_rate_24h"] == 0)]
    failing = train_rows[train_rows[label] == 1]
    rules = {}
    for name in FEATURES:
        healthy_values, failing_values = healthy[name].dropna(), failing[name].dropna()
        median = float(healthy_values.median()) if len(healthy_values) else 0.0
        direction = 1 if failing_values.empty or failing_values.median() >= median else -1
        threshold = (
            float(healthy_values.quantile(0.95 if direction > 0 else 0.05)) if len(healthy_values) else median
        )
        rules[name] = FactorRule(name, direction, threshold, median)
    return rules


@dataclass(frozen=True)
class PipelineState:
    """What a failure question needs of one pipeline: its latest features and its usual values."""

    latest: np.ndarray
    usual: np.ndarray
    consecutive_failures: float
    memory_hours_to_limit: float


def pipeline_state(runs: pd.DataFrame) -> PipelineState:
    features = pipeline_features(runs)
    latest = features.iloc[-1]
    return PipelineState(
        latest=latest[list(FEATURES)].to_numpy(dtype=float),
        usual=features[list(FEATURES)].median().to_numpy(dtype=float),
        consecutive_failures=float(latest["consecutive_failures"]),
        memory_hours_to_limit=float(latest["memory_hours_to_limit"]),
    )


def prevention_window_hours(curve: SurvivalCurve, state: PipelineState) -> float:
    """Hours left to act: the median time to failure on the survival curve, sooner if memory runs out first.

    Zero only while the pipeline is failing.
    """
    if state.consecutive_failures > 0:
        return 0.0
    hours = curve.median_hours()
    if np.isfinite(state.memory_hours_to_limit):
        hours = min(hours, state.memory_hours_to_limit)
    return round(float(hours), 1)


ACTIONS = {
    "memory_headroom": (
        "scale_up",
        "Raise the memory limit or reduce batch size; memory is close to the limit.",
    ),
    "memory_headroom_6h": (
        "scale_up",
        "Raise the memory limit or reduce batch size; memory is close to the limit.",
    ),
    "memory_hours_to_limit": (
        "scale_up",
        "Raise the memory limit before it is reached; memory grows towards it.",
    ),
    "memory_trend": (
        "restart_workers",
        "Look for a memory leak: usage grows day over day; restart workers as a stopgap.",
    ),
    "memory_drift": ("restart_workers", "Look for a memory leak: usage is above its usual level."),
    "duration_drift": (
        "optimize_query",
        "Profile the slow step: runs take longer than their usual duration.",
    ),
    "duration_trend_6h": (
        "check_dependencies",
        "Check upstream latency and locks: the latest runs slowed down sharply.",
    ),
    "duration_per_row_drift": ("optimize_query", "Profile the slow step: each row takes longer than usual."),
    "error_rate_24h": (
        "review_data_quality",
        "Inspect rejected rows: the error rate is above its usual level.",
    ),
    "error_rate_trend": (
        "review_configuration",
        "Review the latest schema or data changes: errors are rising.",
    ),
    "error_rate_recent_trend": (
        "check_dependencies",
        "Errors are surging in the latest runs: check the source system.",
    ),
    "failure_rate_24h": (
        "investigate_failures",
        "Triage the recent failures before the next scheduled runs.",
    ),
    "failure_rate_7d": (
        "investigate_failures",
        "The pipeline fails repeatedly: find the common cause of its failures.",
    ),
    "recent_failures": ("investigate_failures", "Triage the recent failures before the next scheduled runs."),
    "failure_window_share_7d": (
        "investigate_failures",
        "The pipeline fails again and again this week: find the common cause of its failures.",
    ),
    "consecutive_failures": (
        "investigate_failures",
        "The pipeline is failing now: fix the cause, then replay missed runs.",
    ),
    "hours_since_last_success": (
        "review_configuration",
        "No success for a long time: check credentials, sources and the schedule.",
    ),
    "volume_change": ("scale_up", "Verify the source: data volume departs from its usual level."),
    "volume_trend_3d": (
        "scale_up",
        "Data volume keeps growing: plan capacity before it outgrows the limits.",
    ),
    "cpu_drift": ("scale_up", "Check for CPU contention or a heavier query plan."),
    "run_frequency_change": ("review_configuration", "Check the scheduler: runs are missing or duplicated."),
}
NO_ACTION = ("monitor", "No action needed: keep monitoring.")


def recommended_actions(factors: list[Factor]) -> list[tuple[str, str]]:
    """(code, sentence) per distinct action of the factors, at most four; `monitor` without factors."""
    actions: list[tuple[str, str]] = []
    for factor in factors:
        action = ACTIONS.get(factor.factor)
        if action and action not in actions:
            actions.append(action)
    return actions[:4] or [NO_ACTION]


def describe(pipeline_id: str, probability: float, horizon_hours: float, factors: list[Factor]) -> str:
    head = (
        f"Pipeline failure predicted with {probability:.0%} probability in next {horizon_hours:g}h"
        f" ({pipeline_id})"
    )
    if not factors:
        return head + "; no indicator pushes the risk up."
    named = ", ".join(f.factor.replace("_", " ") for f in factors[:3])
    return f"{head}; main drivers: {named}."


def train_job(runs: pd.DataFrame, horizons: Sequence[float], now: datetime, trees: int) -> dict[str, object]:
    """What the training process runs: the outcome as plain data (a refusal is a result, not an error)."""
    started, started_cpu = time.perf_counter(), time.process_time()
    try:
        model = train(runs, horizons, now=now, trees=trees)
        outcome: dict[str, object] = {
            "status": "ready",
            "model": model.to_bytes(),
            "summary": model.summary(),
            "metrics": model.metrics,
        }
    except InsufficientHistory as refusal:
        outcome = {"status": "refused", "detail": refusal.detail}
    # CPU time beside wall time: on a machine shared with other work the wall time is mostly waiting
    return outcome | {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - started_cpu,
    }


FACTOR_LABELS = {
    "failure_rate_24h": "Failures in the last 24 h",
    "failure_rate_7d": "Failures in the last 7 days",
    "failure_window_share_7d": "Often followed by a failure within a day this week",
    "recent_failures": "Failures among the last 6 runs",
    "consecutive_failures": "Failing now",
    "hours_since_last_success": "Time since the last success",
    "hours_since_last_failure": "Time since the last failure",
    "error_rate_24h": "High error rate",
    "error_rate_trend": "Error rate rising (24 h vs 7 days)",
    "error_rate_recent_trend": "Error surge in the last 3 h",
    "duration_drift": "Runs slower than usual",
    "duration_trend_6h": "Latest runs slowed down",
    "duration_per_row_drift": "Slower per row processed",
    "memory_headroom": "Memory close to its limit",
    "memory_headroom_6h": "Memory close to its limit (last 6 h)",
    "memory_trend": "Memory growing day over day",
    "memory_drift": "Memory above its usual level",
    "memory_hours_to_limit": "Memory limit reached soon at the current growth",
    "volume_change": "Data volume off its usual level",
    "volume_trend_3d": "Data volume growing",
    "cpu_drift": "CPU above its usual level",
    "run_frequency_change": "Runs missing or duplicated",
}


def factor_label(feature: str) -> str:
    return FACTOR_LABELS.get(feature, feature.replace("_", " "))
