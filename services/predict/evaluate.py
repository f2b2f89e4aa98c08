"""Evaluation on held-out time: `aietl predict-eval` (or `python -m aietl.services.predict.evaluate`).

Every figure is computed on data the method did not see when it decided, over several simulated
histories (seeds; each seed draws its own mix of pipeline kinds, see `simulator.py`):
- failure: the shipped training (`failure.train`, which itself validates and calibrates on its
  own later slice) on the first 70% of time, scored on the rest (purged by the horizon): ROC-AUC,
  PR-AUC, recall at 1/5/10% false-positive rate, beside the baselines "last run failed",
  "error rate of the last 24 h" and a plain random forest (scikit-learn defaults, same features,
  same training rows); with `--compare`, gradient boosting and a survival view on the same split;
- cost anomalies: precision / recall / F1 against the seeded anomalous days (every day of a spike
  or drop, the first day of a level shift; +-1 day tolerance), beside the robust z-score baseline;
- forecasts (first seed, and real series shipped in the packages): MASE, MAE relative to the
  seasonal-naive forecast, 80% interval coverage;
- maintenance window (first seed): regret against the hindsight-best window of the last week.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from threadpoolctl import threadpool_limits

from aietl.services.predict.domain import costs as cost_domain
from aietl.services.predict.domain import failure as failure_domain
from aietl.services.predict.domain import window as window_domain
from aietl.services.predict.domain.failure import ranking_metrics, time_split
from aietl.services.predict.domain.features import FEATURES, label_column, training_table
from aietl.services.predict.domain.forecast import forecast, mase, seasonal_naive
from aietl.services.predict.simulator import Simulation, simulate

DEFAULT_SEEDS = (1, 2, 3)
TEST_SHARE = 0.3
SURVIVAL_GRID = (6, 12, 24, 48, 72)
RESOURCES = ("cpu_percent", "memory_mb", "disk_mb", "network_mb")


def _split(sim: Simulation, horizon: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs before the cut, their labelled rows, test rows after the cut) of a time split."""
    label = label_column(horizon)
    data = training_table(sim.runs, [horizon]).dropna(subset=[label])
    _, test = time_split(data, (1 - TEST_SHARE,), horizon)
    cut = test["time"].min() - pd.Timedelta(hours=horizon)
    history = sim.runs[sim.runs["started_at"] < cut]
    train_rows = training_table(history, [horizon]).dropna(subset=[label])
    return history, train_rows, test


def evaluate_failure(sim: Simulation, horizon: float = 24, *, trees: int = 100) -> dict[str, Any]:
    history, train_rows, test = _split(sim, horizon)
    label = label_column(horizon)
    started = time.perf_counter()
    model = failure_domain.train(history, [horizon], now=datetime.now(UTC), trees=trees)
    training_seconds = time.perf_counter() - started
    features = test[list(FEATURES)].to_numpy(dtype=float)
    shipped = model.horizons[float(horizon)].probabilities(features)
    plain = RandomForestClassifier(random_state=0, n_jobs=1).fit(
        train_rows[list(FEATURES)].to_numpy(dtype=float), train_rows[label].to_numpy()
    )
    labels = test[label].to_numpy()
    scores = {
        "model": shipped,
        "last_run_failed": (test["consecutive_failures"] > 0).to_numpy(dtype=float),
        "errors_last_24h": test["error_rate_24h"].fillna(0.0).to_numpy(),
        "plain_random_forest": plain.predict_proba(features)[:, 1],
    }
    return {
        "horizon_hours": horizon,
        "test_runs": len(test),
        "training_seconds": round(training_seconds, 1),
        "distinct_probabilities": len(np.unique(shipped)),
        **{name: ranking_metrics(labels, values) for name, values in scores.items()},
        "model_by_cause": _by_cause(sim, test, labels, shipped),
    }


def compare_learners(sim: Simulation, horizon: float = 24, *, trees: int = 100) -> dict[str, Any]:
    """Random forest (shipped), gradient boosting and a survival view on the same time split.

    The survival view learns P(failure within h | features) for a grid of horizons at once (the
    horizon is an input with a monotone constraint), i.e. the distribution of the time to the next
    failure; it is scored at `horizon`. One thread each, as the worker trains.
    """
    history, train_rows, test = _split(sim, horizon)
    label = label_column(horizon)
    x_train, y_train = train_rows[list(FEATURES)].to_numpy(dtype=float), train_rows[label].to_numpy()
    x_test, labels = test[list(FEATURES)].to_numpy(dtype=float), test[label].to_numpy()
    results: dict[str, Any] = {}
    with threadpool_limits(1):
        learners = {
            "random_forest": lambda: (
                failure_domain.new_forest(trees, 0).fit(x_train, y_train).predict_proba(x_test)
            ),
            "hist_gradient_boosting": lambda: (
                HistGradientBoostingClassifier(
                    max_iter=300,
                    learning_rate=0.03,
                    min_samples_leaf=80,
                    l2_regularization=1.0,
                    random_state=0,
                )
                .fit(x_train, y_train)
                .predict_proba(x_test)
            ),
            "survival_gradient_boosting": lambda: _survival(history).predict_proba(
                np.column_stack([x_test, np.full(len(x_test), np.log(horizon))])
            ),
        }
        for name, learn in learners.items():
            started = time.perf_counter()
            scores = learn()[:, 1]
            # ranking_metrics is None when the held-out slice has one class only
            results[name] = (ranking_metrics(labels, scores) or {}) | {
                "training_seconds": round(time.perf_counter() - started, 1)
            }
    return results


def _at_horizon(table: pd.DataFrame, horizon: float) -> pd.DataFrame:
    """The rows labelled at `horizon`, with the horizon as an input and its label as `label`."""
    rows = table.dropna(subset=[label_column(horizon)])
    return rows.assign(log_horizon=np.log(horizon), label=rows[label_column(horizon)].to_numpy())


def _survival(history: pd.DataFrame) -> HistGradientBoostingClassifier:
    table = training_table(history, SURVIVAL_GRID)
    stacked = pd.concat([_at_horizon(table, h) for h in SURVIVAL_GRID])
    return HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.05,
        min_samples_leaf=40,
        monotonic_cst=[0] * len(FEATURES) + [1],
        random_state=0,
    ).fit(stacked[[*FEATURES, "log_horizon"]].to_numpy(dtype=float), stacked["label"].to_numpy())


def _by_cause(sim: Simulation, test: pd.DataFrame, labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """ROC-AUC of the positives of each failure cause against all negatives (what is predictable)."""
    cause = _next_failure_cause(sim, test)
    negatives = scores[labels == 0]
    result = {}
    for name in sorted(set(cause[labels == 1])):
        positives = scores[(labels == 1) & (cause == name)]
        truth = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
        metrics = ranking_metrics(truth, np.concatenate([positives, negatives]))
        result[name] = {
            "positives": len(positives),
            "roc_auc": None if metrics is None else metrics["roc_auc"],
        }
    return result


def _next_failure_cause(sim: Simulation, test: pd.DataFrame) -> np.ndarray:
    """What caused the first failure after each test row (the simulator's truth)."""
    runs = sim.runs.assign(cause=sim.causes)
    failed = runs[runs["status"] == "failed"].sort_values("started_at")
    result = np.full(len(test), "none", dtype=object)
    for pipeline, rows in test.groupby("pipeline_id"):
        mine = failed[failed["pipeline_id"] == pipeline]
        times = mine["started_at"].to_numpy()
        following = np.searchsorted(times, rows["time"].to_numpy(), side="right")
        known = following < len(times)
        positions = test.index.get_indexer(rows.index)
        result[positions[known]] = mine["cause"].to_numpy()[following[known]]
    return result


def evaluate_simulated_forecasts(sim: Simulation, horizon: int = 48) -> dict[str, Any]:
    rows, seconds, cpu_seconds = [], [], []
    for _, runs in sim.runs.groupby("pipeline_id"):
        indexed = runs.set_index("started_at")
        for column in RESOURCES:
            series = indexed[column].astype(float).resample("h").mean().interpolate().to_numpy()
            train, actual = series[:-horizon], series[-horizon:]
            started, started_cpu = time.perf_counter(), time.process_time()
            result = forecast(train, horizon, seasons=(24, 168))
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - started_cpu)
            naive = seasonal_naive(train, horizon, 168 if len(train) >= 2 * 168 else 24)
            rows.append(_scores(train, actual, result, naive, 24))
    return _summary(rows) | {
        "series": len(rows),
        "forecast_ms_median": round(1000 * float(np.median(seconds)), 1),
        "forecast_cpu_ms_median": round(1000 * float(np.median(cpu_seconds)), 1),
    }


def evaluate_monthly_forecasts(series: np.ndarray, origins: int = 4, horizon: int = 12) -> dict[str, Any]:
    rows = []
    for k in range(origins, 0, -1):
        origin = len(series) - k * horizon
        train, actual = series[:origin], series[origin : origin + horizon]
        result = forecast(train, horizon, seasons=(12,))
        rows.append(_scores(train, actual, result, seasonal_naive(train, horizon, 12), 12))
    return _summary(rows) | {"origins": origins}


def _scores(
    train: np.ndarray, actual: np.ndarray, result: Any, naive: np.ndarray, period: int
) -> dict[str, float]:
    return {
        "mase": mase(train, actual, result.mean, period),
        "relative_mae_vs_seasonal_naive": float(
            np.mean(np.abs(actual - result.mean)) / max(np.mean(np.abs(actual - naive)), 1e-12)
        ),
        "coverage_80": float(np.mean((actual >= result.lower) & (actual <= result.upper))),
    }


def _summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    frame = pd.DataFrame(rows)
    return {
        "mase_mean": round(float(frame["mase"].mean()), 3),
        "mase_median": round(float(frame["mase"].median()), 3),
        "relative_mae_vs_seasonal_naive": round(float(frame["relative_mae_vs_seasonal_naive"].mean()), 3),
        "coverage_80": round(float(frame["coverage_80"].mean()), 3),
    }


def real_series() -> dict[str, np.ndarray]:
    """Monthly series shipped inside installed packages (no download)."""
    from statsforecast.utils import AirPassengers
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate().dropna()
    return {"air_passengers": np.asarray(AirPassengers, dtype=float), "co2_monthly": monthly.to_numpy()}


def tolerant_scores(
    found: set[tuple[str, date]], truth: set[tuple[str, date]], days: int = 1
) -> dict[str, float]:
    """Precision, recall and F1 where a flagged day within `days` of a true one (same pipeline) counts."""

    def near(day: date, pipeline: str, days_set: set[tuple[str, date]]) -> bool:
        return any((pipeline, day + timedelta(days=k)) in days_set for k in range(-days, days + 1))

    precision = sum(near(d, p, truth) for p, d in found) / len(found) if found else 0.0
    recall = sum(near(d, p, found) for p, d in truth) / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def evaluate_anomalies(sim: Simulation) -> dict[str, Any]:
    daily = cost_domain.daily_costs(sim.runs)
    found = [a for a in cost_domain.anomalies(daily) if a.scope == "pipeline"]
    flagged = {(str(a.pipeline_id), a.day) for a in found}
    truth = sim.cost_anomalies
    kinds = sim.cost_anomaly_kinds()
    recall_by_kind = {}
    for kind in ("spike", "drop", "level_shift"):
        of_kind = {key for key in truth if kinds[key] == kind}
        if of_kind:
            recall_by_kind[kind] = tolerant_scores(flagged, of_kind)["recall"]
    named = {(str(a.pipeline_id), a.day): a.kind for a in found}
    right_kind = [named[key] == kinds[key] for key in truth if key in named]
    return {
        "true_anomalous_days": len(truth),
        "flagged": len(flagged),
        **tolerant_scores(flagged, truth),
        "recall_by_kind": recall_by_kind,
        "kind_correct_share": round(float(np.mean(right_kind)), 3) if right_kind else None,
        "robust_z_baseline": tolerant_scores(cost_domain.robust_z_baseline(daily), truth),
    }


def evaluate_windows(sim: Simulation, history_days: int, duration_hours: int = 2) -> dict[str, Any]:
    regrets = []
    allowed = window_domain.allowed_starts(duration_hours, [])
    for _, runs in sim.runs.groupby("pipeline_id"):
        cut = runs["started_at"].min().floor("D") + pd.Timedelta(days=history_days)
        history, future = runs[runs["started_at"] < cut], runs[runs["started_at"] >= cut]
        week = window_domain.hourly_profile(future).iloc[: window_domain.HOURS_PER_WEEK]
        if len(week) < window_domain.HOURS_PER_WEEK:
            continue
        chosen = window_domain.best_window(history, duration_hours, [])
        regrets.append(window_domain.regret(chosen.start_hour_of_week, week, duration_hours, allowed))
    return {
        "pipelines": len(regrets),
        "regret_mean": round(float(np.mean(regrets)), 3),
        "regret_median": round(float(np.median(regrets)), 3),
        "regret_p90": round(float(np.quantile(regrets, 0.9)), 3),
    }


def run(
    *,
    seeds: tuple[int, ...] = DEFAULT_SEEDS,
    pipelines: int = 60,
    days: int = 22,
    trees: int = 100,
    compare: bool = False,
    forecasts: bool = True,
) -> dict[str, Any]:
    per_seed: dict[int, dict[str, Any]] = {}
    first: Simulation | None = None
    for seed in seeds:
        sim = simulate(pipelines=pipelines, days=days, seed=seed)
        first = first or sim
        per_seed[seed] = {
            "runs": len(sim.runs),
            "kinds": pd.Series([p.kind for p in sim.pipelines]).value_counts().to_dict(),
            "failure_24h": evaluate_failure(sim, 24, trees=trees),
            "cost_anomalies": evaluate_anomalies(sim),
        }
        if compare:
            per_seed[seed]["learners_24h"] = compare_learners(sim, 24, trees=trees)
    result: dict[str, Any] = {
        "simulation": {"seeds": list(seeds), "pipelines": pipelines, "days": days},
        "summary": summarise(per_seed),
        "seeds": per_seed,
    }
    if forecasts and first is not None:
        real = real_series()
        result["forecast_simulated_48h"] = evaluate_simulated_forecasts(first)
        result["forecast_air_passengers_12m"] = evaluate_monthly_forecasts(real["air_passengers"])
        result["forecast_co2_12m"] = evaluate_monthly_forecasts(real["co2_monthly"])
        result["maintenance_window"] = evaluate_windows(first, days - 7)
    return result


FAILURE_METHODS = ("model", "last_run_failed", "errors_last_24h", "plain_random_forest")
FAILURE_FIGURES = ("roc_auc", "pr_auc", "recall_at_5pct_fpr")


def summarise(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst seed of each headline figure."""

    def spread(values: list[float]) -> dict[str, float]:
        return {"mean": round(float(np.mean(values)), 3), "min": round(float(np.min(values)), 3)}

    failure = {
        method: {
            figure: spread([seed["failure_24h"][method][figure] for seed in per_seed.values()])
            for figure in FAILURE_FIGURES
        }
        for method in FAILURE_METHODS
    }
    costs = {
        "model": spread([seed["cost_anomalies"]["f1"] for seed in per_seed.values()]),
        "robust_z_baseline": spread(
            [seed["cost_anomalies"]["robust_z_baseline"]["f1"] for seed in per_seed.values()]
        ),
    }
    summary: dict[str, Any] = {"failure_24h": failure, "cost_anomaly_f1": costs}
    learners = [seed["learners_24h"] for seed in per_seed.values() if "learners_24h" in seed]
    if learners:
        summary["learners_24h"] = {
            name: {figure: spread([entry[name][figure] for entry in learners]) for figure in FAILURE_FIGURES}
            for name in learners[0]
        }
    return summary


def table(result: dict[str, Any]) -> str:
    """The headline figures as text: each method's mean (worst seed) beside the goals."""
    summary = result["summary"]
    lines = [
        f"seeds {result['simulation']['seeds']}, {result['simulation']['pipelines']} pipelines, "
        f"{result['simulation']['days']} days each; failure within 24 h on the last {TEST_SHARE:.0%} of time",
        f"{'method':<28}{'ROC-AUC':>16}{'PR-AUC':>16}{'recall@5%FPR':>16}",
    ]

    def row(name: str, figures: dict[str, dict[str, float]]) -> str:
        cells = "".join(f"{figures[f]['mean']:>9.3f} ({figures[f]['min']:.3f})" for f in FAILURE_FIGURES)
        return f"{name:<28}{cells}"

    for method, figures in summary["failure_24h"].items():
        lines.append(row(method, figures))
    lines.append(f"{'goal':<28}{'>= 0.90':>16}{'>= 0.80':>16}{'>= 0.60':>16}")
    for name, figures in summary.get("learners_24h", {}).items():
        lines.append(row(f"compare: {name}", figures))
    costs = summary["cost_anomaly_f1"]
    lines.append(
        f"cost anomalies F1 (+-1 day): model {costs['model']['mean']:.3f} ({costs['model']['min']:.3f}), "
        f"robust z-score {costs['robust_z_baseline']['mean']:.3f} ({costs['robust_z_baseline']['min']:.3f});"
        " goal >= 0.85"
    )
    lines.append("mean (worst seed); the JSON (--json) has every seed, recall at 1/10% FPR and the causes")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="comma-separated")
    parser.add_argument("--pipelines", type=int, default=60)
    parser.add_argument("--days", type=int, default=22)
    parser.add_argument("--compare", action="store_true", help="also gradient boosting and the survival view")
    parser.add_argument("--no-forecasts", action="store_true", help="skip forecasts and maintenance windows")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    arguments = parser.parse_args(argv)
    result = run(
        seeds=tuple(int(seed) for seed in arguments.seeds.split(",")),
        pipelines=arguments.pipelines,
        days=arguments.days,
        compare=arguments.compare,
        forecasts=not arguments.no_forecasts,
    )
    print(json.dumps(result, indent=2, default=str) if arguments.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
