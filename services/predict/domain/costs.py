"""Costs: daily totals, a 30-day outlook, anomalous days and money that could be saved.

An anomaly is a day whose cost departs from its local level: the level is a centred rolling
median (a level shift moves the median with it and is not an anomaly), day-of-week effects are
removed, and the residual is scored with a robust z-score (median/MAD). Only spending above the
expected level is an anomaly (a drop in spend shows up in volume and failure signals). An
Isolation Forest over (robust z, ratio to level) gives a second opinion that each anomaly reports
(`detected_by`); alone it flags too many ordinary days to decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from services.predict.domain.forecast import forecast

Z_THRESHOLD = 3.5  # Iglewicz & Hoaglin's cut-off for the modified z-score
LEVEL_WINDOW_DAYS = 7
MIN_COST_USD = 0.01  # days cheaper than a cent are compared as a cent
MIN_RELATIVE_SCALE = 0.02  # day-to-day swings under ~2% are never called anomalies
MONTH_DAYS = 30


@dataclass(frozen=True)
class CostAnomaly:
    pipeline_id: str
    day: date
    cost_usd: float
    expected_usd: float
    robust_z: float
    isolation_forest: bool
    detected_by: tuple[str, ...]


@dataclass(frozen=True)
class Saving:
    amount_usd: float
    reasoning: str


def daily_costs(runs: pd.DataFrame) -> pd.DataFrame:
    """Cost per pipeline per UTC day (days without runs count as 0) and failed-run cost."""
    frame = runs.assign(
        day=pd.DatetimeIndex(runs["started_at"]).tz_convert("UTC").normalize(),
        cost=runs["cost_usd"].fillna(0.0),
        failed_cost=np.where(runs["status"] == "failed", runs["cost_usd"].fillna(0.0), 0.0),
    )
    grouped = frame.groupby(["pipeline_id", "day"])[["cost", "failed_cost"]].sum()
    full = []
    for pipeline, group in grouped.groupby(level=0):
        days = group.index.get_level_values(1)
        span = pd.date_range(days.min(), days.max(), freq="D")
        full.append(group.droplevel(0).reindex(span, fill_value=0.0).assign(pipeline_id=pipeline))
    result = pd.concat(full).rename_axis("day").reset_index()
    return result[["pipeline_id", "day", "cost", "failed_cost"]]


def robust_scores(costs: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(robust z, expected cost) per day of one pipeline's daily cost series indexed by day."""
    logged = np.log(costs.clip(lower=0) + MIN_COST_USD)
    weekday = pd.Series(costs.index.dayofweek, index=costs.index)

    def local_level(series: pd.Series) -> pd.Series:
        return series.rolling(LEVEL_WINDOW_DAYS, center=True, min_periods=3).median()

    # Two passes: a first level gives the day-of-week effect; the level of the de-weekdayed
    # series then follows a level shift exactly at its day.
    weekly = (logged - local_level(logged)).groupby(weekday).transform("median").fillna(0.0)
    level = local_level(logged - weekly)
    adjusted = logged - weekly - level
    centre = adjusted.median()
    # Noise scale from day-to-day differences: residuals from a rolling median are partly zero
    # by construction (the median is one of the values) and would understate it; a spike moves
    # two differences and a level shift one, so the median ignores both.
    differences = (logged - weekly).diff().abs().dropna()
    scale = max(float(differences.median()) / (0.6745 * np.sqrt(2)), MIN_RELATIVE_SCALE)
    return (adjusted - centre) / scale, np.exp(level + weekly + centre) - MIN_COST_USD


def anomalies(daily: pd.DataFrame, *, seed: int = 0) -> list[CostAnomaly]:
    found: list[CostAnomaly] = []
    for pipeline, group in daily.groupby("pipeline_id"):
        costs = group.set_index("day")["cost"]
        if len(costs) < LEVEL_WINDOW_DAYS:
            continue
        z, expected = robust_scores(costs)
        ratio = np.log((costs + MIN_COST_USD) / (expected.clip(lower=0) + MIN_COST_USD))
        features = np.column_stack([z.fillna(0.0), ratio.fillna(0.0)])
        forest = IsolationForest(n_estimators=50, contamination="auto", random_state=seed)
        isolated = forest.fit(features).predict(features) == -1
        for i, day in enumerate(costs.index):
            score = float(z.iloc[i]) if np.isfinite(z.iloc[i]) else 0.0
            if score < Z_THRESHOLD:
                continue
            found.append(
                CostAnomaly(
                    pipeline_id=str(pipeline),
                    day=day.date(),
                    cost_usd=round(float(costs.iloc[i]), 4),
                    expected_usd=round(float(expected.iloc[i]), 4),
                    robust_z=round(score, 2),
                    isolation_forest=bool(isolated[i]),
                    detected_by=("robust_z", "isolation_forest") if isolated[i] else ("robust_z",),
                )
            )
    return sorted(found, key=lambda a: (a.day, a.pipeline_id))


def project_outlook(daily: pd.DataFrame) -> tuple[float, float, tuple[float, float]]:
    """(current daily cost, predicted next-30-day cost, its 80% interval) of the project total."""
    total = daily.groupby("day")["cost"].sum().sort_index()
    current = float(total.iloc[-1])
    if len(total) < 14:
        recent = float(total.tail(7).mean())
        return current, recent * MONTH_DAYS, (recent * MONTH_DAYS, recent * MONTH_DAYS)
    outlook = forecast(total.to_numpy(), MONTH_DAYS, seasons=(7,))
    low = float(np.sum(outlook.lower)) if outlook.log_scale else float(np.sum(np.maximum(outlook.lower, 0)))
    return current, float(np.sum(outlook.mean)), (low, float(np.sum(outlook.upper)))


def savings(daily: pd.DataFrame, found: list[CostAnomaly], *, window_days: int = MONTH_DAYS) -> list[Saving]:
    """Money a month of the recent past shows could be saved, each with why."""
    since = daily["day"].max() - pd.Timedelta(days=window_days - 1)
    recent = daily[daily["day"] >= since]
    result = []
    spikes = [a for a in found if a.cost_usd > a.expected_usd and pd.Timestamp(a.day, tz="UTC") >= since]
    excess = sum(a.cost_usd - a.expected_usd for a in spikes)
    if excess > 0:
        result.append(
            Saving(
                round(excess, 2),
                f"{len(spikes)} anomalous day(s) cost {excess:.2f} USD above their expected level; "
                "capping retries and alerting on spend would have avoided most of it",
            )
        )
    wasted = float(recent["failed_cost"].sum())
    if wasted > 0:
        result.append(
            Saving(
                round(wasted, 2),
                f"failed runs consumed {wasted:.2f} USD in the last {window_days} days; "
                "failing fast (validate inputs first) saves most of this",
            )
        )
    return result
