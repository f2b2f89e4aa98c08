"""Costs: daily totals, a 30-day outlook, anomalies in both directions and money that could be saved.

Anomalies are found on the whole stored history of each pipeline and of the project total, on the
log of the daily cost with its day-of-week effect and its slow trend removed:

- a **spike** or a **drop** is a day (or a few) far from the level on *both* sides of it: before
  and after; every such day is an anomaly (a pipeline that stopped loading data costs less, which
  matters as much as a bill that jumped);
- a **level shift** is a lasting change: the level of the days from it on differs from the level
  of the days before it. Only its first day is an anomaly; after it, the new level is normal
  (it is the "before" of the days that follow). The change point is the day where the split
  between the two levels is largest.

Levels are medians of a week on each side, so an event of up to three days does not move them;
the noise scale comes from day-to-day differences (a spike moves two of them and a shift one, the
median ignores both). The trend is the median day-to-day difference (steady growth is not a
shift; a running estimate would drift and invent shifts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd

from aietl.services.predict.domain.forecast import forecast

AnomalyKind = Literal["spike", "drop", "level_shift"]
Z_THRESHOLD = 4.0  # in units of the day-to-day noise of the pipeline's (log) cost
SHIFT_THRESHOLD = 4.0  # difference of the two week medians, in the same units
SIDE_DAYS = 7  # days of level on each side of a day
MIN_SIDE_DAYS = 3
SHIFT_SIDE_DAYS = 5  # a level shift needs this many days of the old level before it
MIN_COST_USD = 0.01  # days cheaper than a cent are compared as a cent
MIN_NOISE = 0.02  # log units: day-to-day swings under ~2% are never called anomalies
MONTH_DAYS = 30


@dataclass(frozen=True)
class CostAnomaly:
    scope: Literal["pipeline", "project"]
    pipeline_id: str | None
    day: date
    kind: AnomalyKind
    cost_usd: float
    expected_usd: float
    score: float  # departure from the expected level, in noise units (signed)


@dataclass(frozen=True)
class Saving:
    amount_usd: float
    reasoning: str


def fill_days(daily: pd.DataFrame) -> pd.DataFrame:
    """Daily rows (pipeline_id, day, cost, failed_cost) with the missing days of each pipeline as 0."""
    full = []
    for pipeline, group in daily.groupby("pipeline_id"):
        indexed = group.set_index("day")[["cost", "failed_cost"]].sort_index()
        span = pd.date_range(indexed.index.min(), indexed.index.max(), freq="D")
        full.append(indexed.reindex(span, fill_value=0.0).assign(pipeline_id=pipeline))
    if not full:
        return pd.DataFrame(columns=["pipeline_id", "day", "cost", "failed_cost"])
    result = pd.concat(full).rename_axis("day").reset_index()
    return result[["pipeline_id", "day", "cost", "failed_cost"]]


def daily_costs(runs: pd.DataFrame) -> pd.DataFrame:
    """Cost per pipeline per UTC day (days without runs count as 0) and failed-run cost, from runs."""
    frame = runs.assign(
        day=pd.DatetimeIndex(runs["started_at"]).tz_convert("UTC").normalize(),
        cost=runs["cost_usd"].fillna(0.0),
        failed_cost=np.where(runs["status"] == "failed", runs["cost_usd"].fillna(0.0), 0.0),
    )
    return fill_days(frame.groupby(["pipeline_id", "day"])[["cost", "failed_cost"]].sum().reset_index())


def _departures(values: np.ndarray) -> np.ndarray:
    """Departure of each day from the median of the week centred on it."""
    centred = pd.Series(values).rolling(SIDE_DAYS, center=True, min_periods=MIN_SIDE_DAYS).median()
    return values - centred.to_numpy()


def weekly_shape(values: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Median departure per weekday (7 values; zeros with less than two weeks of history)."""
    if len(values) < 14:
        return np.zeros(7)
    return pd.Series(_departures(values)).groupby(weekday).median().reindex(range(7)).fillna(0.0).to_numpy()


def _weekday_effect(
    values: np.ndarray, weekday: np.ndarray, shape: np.ndarray, shifts: list[int], excluded: set[int]
) -> np.ndarray:
    """The weekly `shape` (of the project's total) scaled to this series, per day.

    A few weeks hold only a few samples of each weekday: one pipeline's own per-weekday median is
    taken over by two anomalous Saturdays out of three. The project total's shape is stable (one
    pipeline's anomaly is diluted); one scale per pipeline is fitted on day-to-day differences
    (a level does not enter them) as a weighted median of (change of cost / change of shape) over
    the days where the shape changes, leaving out changes across shifts and anomalous days.
    """
    pattern = shape[weekday]
    if len(values) < 14:
        return np.zeros(len(values))
    changes, shape_changes = np.diff(values), np.diff(pattern)
    usable = _step_mask(len(values), shifts, excluded) & (np.abs(shape_changes) > 0.05)
    if usable.sum() < 3:
        return np.zeros(len(values))
    ratios = changes[usable] / shape_changes[usable]
    weights = np.abs(shape_changes[usable])
    order = np.argsort(ratios)
    cumulative = np.cumsum(weights[order])
    scale = float(ratios[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    return np.clip(scale, 0.0, 3.0) * pattern


def _side_medians(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per day: median of the week before it, of the week after it, and of the week from it on."""
    series = pd.Series(values)
    rolling = series.rolling(SIDE_DAYS, min_periods=MIN_SIDE_DAYS).median()
    before = rolling.shift(1).to_numpy()
    reversed_rolling = series[::-1].rolling(SIDE_DAYS, min_periods=MIN_SIDE_DAYS).median()[::-1]
    from_here = reversed_rolling.to_numpy()
    after = reversed_rolling.shift(-1).to_numpy()
    return before, after, from_here


def _segment_sides(values: np.ndarray, shifts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per day: median of up to a week before it and after it, within its segment between shifts."""
    before, after = np.full(len(values), np.nan), np.full(len(values), np.nan)
    edges = [0, *shifts, len(values)]
    for start, end in pairwise(edges):
        for day in range(start, end):
            head = values[max(start, day - SIDE_DAYS) : day]
            tail = values[day + 1 : min(end, day + 1 + SIDE_DAYS)]
            if len(head) >= MIN_SIDE_DAYS:
                before[day] = np.median(head)
            if len(tail) >= MIN_SIDE_DAYS:
                after[day] = np.median(tail)
    return before, after


def _step_deviation(values: np.ndarray, split: int) -> float:
    """Absolute deviation of `values` from their medians before and from `split`."""
    head, tail = values[:split], values[split:]
    return float(np.abs(head - np.median(head)).sum() + np.abs(tail - np.median(tail)).sum())


def _step_mask(length: int, shifts: list[int], excluded: set[int]) -> np.ndarray:
    """Which day-to-day differences cross no level shift and touch no anomalous day."""
    keep = np.ones(length - 1, dtype=bool)
    for day in shifts:
        keep[day - 1] = False
    for day in excluded:
        keep[max(0, day - 1) : day + 1] = False
    return keep


def _clean_steps(values: np.ndarray, shifts: list[int], excluded: set[int]) -> np.ndarray:
    steps = np.diff(values)
    keep = _step_mask(len(values), shifts, excluded)
    return steps[keep] if keep.sum() >= MIN_SIDE_DAYS else steps


def _find(level: np.ndarray, noise: float) -> dict[int, tuple[AnomalyKind, float, float]]:
    """Level shifts (change points), then spikes and drops against their own segment's level."""
    before, _, from_here = _side_medians(level)
    found: dict[int, tuple[AnomalyKind, float, float]] = {}
    shift = np.abs(from_here - before) / noise
    enough_before = pd.Series(level).rolling(SIDE_DAYS, min_periods=1).count().shift(1).to_numpy()
    candidates = np.flatnonzero((np.nan_to_num(shift) > SHIFT_THRESHOLD) & (enough_before >= SHIFT_SIDE_DAYS))
    # A week median on each side stays split for several days around a step; the change point is
    # the day where a two-level (median) fit of the surrounding days leaves the least deviation.
    for region in np.split(candidates, np.flatnonzero(np.diff(candidates) > 1) + 1):
        if not len(region):
            continue
        low, high = max(0, region[0] - SIDE_DAYS), min(len(level), region[-1] + SIDE_DAYS + 1)
        day = min(region, key=lambda d: _step_deviation(level[low:high], d - low))
        found[int(day)] = ("level_shift", before[day], float((from_here[day] - before[day]) / noise))

    # Spikes and drops are judged against the level of their own segment: the days between two
    # level shifts (a shift's old level is no reference for the days after it).
    before, after = _segment_sides(level, sorted(found))
    to_before = (level - before) / noise
    to_after = (level - after) / noise
    for day in range(len(level)):
        if day in found:
            continue
        sides = [side[day] for side in (to_before, to_after) if not np.isnan(side[day])]
        if not sides:
            continue
        # Both sides known: the smaller departure must be large and both of the same sign. At the
        # edges of the history only one side exists, and only a larger departure counts.
        departure = min(sides, key=abs)
        one_sided = len(sides) == 1
        confirmed = abs(departure) > (1.5 if one_sided else 1.0) * Z_THRESHOLD and (
            one_sided or np.sign(sides[0]) == np.sign(sides[1])
        )
        if confirmed:
            expected_level = before[day] if not np.isnan(before[day]) else after[day]
            found[day] = ("spike" if departure > 0 else "drop", expected_level, float(departure))
    return found


def detect(costs: pd.Series, shape: np.ndarray | None = None) -> list[tuple[int, AnomalyKind, float, float]]:
    """(position, kind, expected cost, signed score) of each anomalous day of a daily cost series;
    `shape`: the weekly shape to scale (default: the series' own)."""
    values = np.log(costs.clip(lower=0).to_numpy(dtype=float) + MIN_COST_USD)
    if len(values) < 2 * MIN_SIDE_DAYS + 1:
        return []
    weekday = pd.DatetimeIndex(costs.index).dayofweek.to_numpy()
    shape = weekly_shape(values, weekday) if shape is None else shape
    # Two passes: the weekly scale, the noise and the trend are estimated again without the
    # anomalies the first pass found (a shift or a spike on a weekend distorts all three).
    shifts: list[int] = []
    excluded: set[int] = set()
    for _ in range(2):
        weekly = _weekday_effect(values, weekday, shape, shifts, excluded)
        adjusted = values - weekly
        steps = _clean_steps(adjusted, shifts, excluded)
        noise = max(float(np.median(np.abs(steps - np.median(steps)))) * 1.4826 / np.sqrt(2), MIN_NOISE)
        trend = float(np.median(steps)) * np.arange(len(values))  # steady growth (or decline) per day
        level = adjusted - trend
        found = _find(level, noise)
        shifts = sorted(day for day, (kind, _, _) in found.items() if kind == "level_shift")
        excluded = {day for day, (kind, _, _) in found.items() if kind != "level_shift"}
    result = []
    for day, (kind, expected_level, score) in sorted(found.items()):
        expected = float(np.exp(expected_level + trend[day] + weekly[day]) - MIN_COST_USD)
        result.append((day, kind, max(expected, 0.0), score))
    return result


def anomalies(daily: pd.DataFrame) -> list[CostAnomaly]:
    """Anomalous days of every pipeline and of the project's total, in both directions."""
    found: list[CostAnomaly] = []
    series: list[tuple[Literal["pipeline", "project"], str | None, pd.Series]] = [
        ("pipeline", str(pipeline), group.set_index("day")["cost"].sort_index())
        for pipeline, group in daily.groupby("pipeline_id")
    ]
    total = daily.groupby("day")["cost"].sum().sort_index()
    series.append(("project", None, total))
    shape = weekly_shape(
        np.log(total.to_numpy(dtype=float) + MIN_COST_USD), pd.DatetimeIndex(total.index).dayofweek.to_numpy()
    )
    for scope, pipeline, costs in series:
        for position, kind, expected, score in detect(costs, shape):
            found.append(
                CostAnomaly(
                    scope=scope,
                    pipeline_id=pipeline,
                    day=costs.index[position].date(),
                    kind=kind,
                    cost_usd=round(float(costs.iloc[position]), 4),
                    expected_usd=round(expected, 4),
                    score=round(score, 2),
                )
            )
    return sorted(found, key=lambda a: (a.day, a.scope, a.pipeline_id or ""))


def robust_z_baseline(daily: pd.DataFrame, threshold: float = 3.5) -> set[tuple[str, date]]:
    """The baseline `aietl predict-eval` compares with: |modified z| of each day's cost over the
    pipeline's whole history (median and MAD), both directions."""
    flagged = set()
    for pipeline, group in daily.groupby("pipeline_id"):
        costs = group.set_index("day")["cost"]
        mad = float(np.median(np.abs(costs - costs.median())))
        if mad <= 0:
            continue
        z = 0.6745 * (costs - costs.median()) / mad
        flagged |= {(str(pipeline), day.date()) for day in costs.index[np.abs(z.to_numpy()) >= threshold]}
    return flagged


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
    spikes = [
        a
        for a in found
        if a.scope == "pipeline" and a.kind == "spike" and pd.Timestamp(a.day, tz="UTC") >= since
    ]
    excess = sum(a.cost_usd - a.expected_usd for a in spikes)
    if excess > 0:
        result.append(
            Saving(
                round(excess, 2),
                f"{len(spikes)} cost spike day(s) cost {excess:.2f} USD above their expected level; "
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
