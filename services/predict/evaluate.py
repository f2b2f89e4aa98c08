"""Evaluation on held-out time: `python -m services.predict.evaluate` (or `aietl predict-eval`).

Every figure is computed on data the method did not see when it decided:
- failure: model fitted (and calibrated) on the first 70% of time, scored on the rest (purged by
  the horizon); ROC-AUC, PR-AUC, recall at 5% false-positive rate, and AUC split by cause;
- forecasts: last 48 h of each simulated resource series, and rolling 12-month origins of
  AirPassengers (statsforecast) and monthly CO2 (statsmodels, both shipped in the packages);
  MASE (scaled by the in-sample seasonal-naive error), MAE relative to the seasonal-naive forecast,
  and 80% interval coverage (the interval is calibrated on backtests inside the history handed to
  the forecast, so the scored window never takes part);
- cost anomalies: precision / recall / F1 of anomalous pipeline-days against the simulator's spikes;
- maintenance window: window chosen from four weeks, regret against the hindsight-best window of
  the fifth week, as a share of the average window's impact.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from services.predict.domain import costs as cost_domain
from services.predict.domain import failure as failure_domain
from services.predict.domain import window as window_domain
from services.predict.domain.features import dataset
from services.predict.domain.forecast import forecast, mase, seasonal_naive
from services.predict.simulator import Simulation, simulate

RESOURCES = ("cpu_percent", "memory_mb", "disk_mb", "network_mb")


def evaluate_failure(sim: Simulation, horizon_hours: float = 24, *, trees: int = 150) -> dict[str, Any]:
    data = dataset(sim.runs, horizon_hours).dropna(subset=["label"])
    _, test = failure_domain.time_split(data, (0.7,), horizon_hours)
    cut = test["time"].min() - pd.Timedelta(hours=horizon_hours)
    model = failure_domain.fit(
        sim.runs[sim.runs["started_at"] < cut], horizon_hours, now=datetime.now(UTC), trees=trees
    )
    probability = model.probabilities(test)
    label = test["label"].to_numpy()
    fpr, tpr, _ = roc_curve(label, probability)
    cause = _next_failure_cause(sim, test, horizon_hours)
    by_cause = {}
    negatives = probability[label == 0]
    for name in ("degradation", "sudden_break", "sporadic"):
        positives = probability[(label == 1) & (cause == name)]
        if len(positives):
            scores = np.concatenate([positives, negatives])
            truth = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
            by_cause[name] = {
                "positives": len(positives),
                "roc_auc": round(float(roc_auc_score(truth, scores)), 3),
            }
    return {
        "horizon_hours": horizon_hours,
        "test_runs": len(test),
        "test_positive_share": round(float(label.mean()), 3),
        "roc_auc": round(float(roc_auc_score(label, probability)), 3),
        "pr_auc": round(float(average_precision_score(label, probability)), 3),
        "recall_at_5pct_fpr": round(float(np.interp(0.05, fpr, tpr)), 3),
        "brier": round(float(np.mean((probability - label) ** 2)), 4),
        "by_cause": by_cause,
    }


def _next_failure_cause(sim: Simulation, test: pd.DataFrame, horizon_hours: float) -> np.ndarray:
    """What caused the first failure within the horizon of each test row (for the breakdown)."""
    runs = sim.runs
    start = runs["started_at"].min().floor("D")
    hour = ((runs["started_at"] - start).dt.total_seconds() // 3600).astype(int)
    cause = pd.Series("sporadic", index=runs.index)
    for plan in sim.pipelines:
        mine = runs["pipeline_id"] == plan.pipeline_id
        for d in plan.degradations:
            cause[mine & (hour >= d.start_hour) & (hour < d.start_hour + d.ramp_hours + d.repair_hours)] = (
                "degradation"
            )
        for b in plan.breaks:
            cause[mine & (hour >= b.start_hour) & (hour < b.start_hour + b.hours)] = "sudden_break"
    failed = runs.assign(cause=cause)[runs["status"] == "failed"].sort_values("started_at")
    result = np.array(["none"] * len(test), dtype=object)
    for pipeline, rows in test.groupby("pipeline_id"):
        mine = failed[failed["pipeline_id"] == pipeline]
        times = mine["started_at"].to_numpy()
        nxt = np.searchsorted(times, rows["time"].to_numpy(), side="right")
        for position, index in zip(nxt, rows.index, strict=True):
            if position < len(times):
                result[test.index.get_loc(index)] = mine["cause"].iloc[position]
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


def evaluate_anomalies(sim: Simulation) -> dict[str, Any]:
    daily = cost_domain.daily_costs(sim.runs)
    found = {(a.pipeline_id, a.day) for a in cost_domain.anomalies(daily)}
    truth = sim.cost_anomalies
    hits = len(found & truth)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "true_anomalies": len(truth),
        "flagged": len(found),
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "level_shifts_flagged": sum(
            1 for p in sim.pipelines if p.cost_shift_day and (p.pipeline_id, p.cost_shift_day) in found
        ),
        "level_shifts": sum(1 for p in sim.pipelines if p.cost_shift_day),
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


def run(*, seed: int = 7, pipelines: int = 24, days: int = 35, trees: int = 150) -> dict[str, Any]:
    sim = simulate(pipelines=pipelines, days=days, seed=seed)
    real = real_series()
    return {
        "simulation": {"seed": seed, "pipelines": pipelines, "days": days, "runs": len(sim.runs)},
        "failure_24h": evaluate_failure(sim, 24, trees=trees),
        "forecast_simulated_48h": evaluate_simulated_forecasts(sim),
        "forecast_air_passengers_12m": evaluate_monthly_forecasts(real["air_passengers"]),
        "forecast_co2_12m": evaluate_monthly_forecasts(real["co2_monthly"]),
        "cost_anomalies": evaluate_anomalies(sim),
        "maintenance_window": evaluate_windows(sim, days - 7),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pipelines", type=int, default=24)
    parser.add_argument("--days", type=int, default=35)
    arguments = parser.parse_args(argv)
    print(json.dumps(run(seed=arguments.seed, pipelines=arguments.pipelines, days=arguments.days), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
