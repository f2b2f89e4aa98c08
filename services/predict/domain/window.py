"""Maintenance window: the hours of the week when taking a pipeline down hurts least.

Expected impact of an hour of the week = its expected load (rows processed, as a share of the
weekly mean) plus its expected failures (a failed hour's work is done twice; maintenance during
fragile hours compounds incidents), with failure rates shrunk so that only recurring patterns
count. Load is modelled as hour-of-day profile x day-of-week factor, which needs far fewer weeks
of history than 168 free slots. Confidence is the share of past weeks
in which the chosen window was among the best 10% of allowed windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

HOURS_PER_WEEK = 168
FAILURE_WEIGHT = 1.0  # a failed hour costs its work twice: the run and its re-run
SHRINKAGE = 10.0  # pseudo-observations pulling sparse failure rates towards the broader rate
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_NAMES_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Blackout:
    """Hours of the week (0 = Monday 00:00 UTC) when maintenance is not allowed, end exclusive."""

    start_hour: int
    end_hour: int

    def covers(self, hour_of_week: int) -> bool:
        if self.start_hour <= self.end_hour:
            return self.start_hour <= hour_of_week < self.end_hour
        return hour_of_week >= self.start_hour or hour_of_week < self.end_hour


@dataclass(frozen=True)
class Window:
    start_hour_of_week: int
    duration_hours: int
    expected_impact: float
    baseline_impact: float
    confidence: float

    @property
    def label(self) -> str:
        day, hour = divmod(self.start_hour_of_week, 24)
        end_day, end_hour = divmod((self.start_hour_of_week + self.duration_hours) % HOURS_PER_WEEK, 24)
        return f"{DAY_NAMES[day]} {hour:02d}:00 - {DAY_NAMES[end_day]} {end_hour:02d}:00 UTC"

    @property
    def time_window(self) -> str:
        """The specification's `time_window`: clock hours of the window, UTC (`02:00-04:00`)."""
        start = self.start_hour_of_week % 24
        return f"{start:02d}:00-{(start + self.duration_hours) % 24:02d}:00"


class NoAllowedWindow(ValueError):
    """The blackouts cover every possible start of a window of that length."""


def parse_blackout(text: str) -> Blackout:
    """`Mon 08:00-Fri 18:00` or `Sat 00:00-Sat 06:00` (UTC)."""
    try:
        first, second = (part.strip() for part in text.split("-", 1))
        return Blackout(_hour_of_week(first), _hour_of_week(second))
    except (ValueError, IndexError) as error:
        raise ValueError(f"blackout {text!r} must look like 'Mon 08:00-Fri 18:00' (UTC)") from error


def _hour_of_week(text: str) -> int:
    day, clock = text.split()
    hour, minute = clock.split(":")
    if int(minute) != 0 or not 0 <= int(hour) <= 24:
        raise ValueError("whole hours only")
    return (DAY_NAMES.index(day.capitalize()[:3]) * 24 + int(hour)) % HOURS_PER_WEEK


def hourly_profile(runs: pd.DataFrame) -> pd.DataFrame:
    """Per UTC hour: load (rows read) and failure share, with hour of week."""
    frame = runs.assign(
        hour=pd.DatetimeIndex(runs["started_at"]).tz_convert("UTC").floor("h"),
        failed=(runs["status"] == "failed").astype(float),
        load=runs["rows_read"].astype(float),
    )
    hourly = frame.groupby("hour").agg(load=("load", "sum"), failed=("failed", "mean"))
    span = pd.date_range(hourly.index.min(), hourly.index.max(), freq="h")
    hourly = hourly.reindex(span).fillna({"load": 0.0, "failed": 0.0})
    stamps = pd.DatetimeIndex(hourly.index)
    hourly["hour_of_week"] = stamps.dayofweek * 24 + stamps.hour
    return hourly


def expected_impact(hourly: pd.DataFrame) -> np.ndarray:
    """Impact per hour of week from an hour-of-day x day-of-week load model and failure history."""
    mean_load = hourly["load"].mean() or 1.0
    load = hourly["load"] / mean_load
    hour = pd.DatetimeIndex(hourly.index).hour
    day = pd.DatetimeIndex(hourly.index).dayofweek
    by_hour = load.groupby(hour).mean().reindex(range(24), fill_value=0.0).to_numpy()
    day_factor = (
        (load.groupby(day).mean() / load.mean()).reindex(range(7), fill_value=1.0).to_numpy()
        if load.mean() > 0
        else np.ones(7)
    )
    slots = np.arange(HOURS_PER_WEEK)
    return by_hour[slots % 24] * day_factor[slots // 24] + FAILURE_WEIGHT * _failure_rate(hourly)[slots]


def _failure_rate(hourly: pd.DataFrame) -> np.ndarray:
    """Failure share per hour of week, shrunk towards the hour-of-day and overall rates.

    Failures are rare: a raw rate per hour of week from a few weeks is mostly noise, so only a
    pattern that recurs (same hour, several days or weeks) moves the estimate far from the mean.
    """
    overall = float(hourly["failed"].mean())
    by_hour_of_day = (
        hourly["failed"]
        .groupby(pd.DatetimeIndex(hourly.index).hour)
        .agg(["sum", "count"])
        .reindex(range(24), fill_value=0)
    )
    daily_rate = (by_hour_of_day["sum"] + SHRINKAGE * overall) / (by_hour_of_day["count"] + SHRINKAGE)
    by_slot = (
        hourly["failed"]
        .groupby(hourly["hour_of_week"])
        .agg(["sum", "count"])
        .reindex(range(HOURS_PER_WEEK), fill_value=0)
    )
    prior = daily_rate.to_numpy()[np.arange(HOURS_PER_WEEK) % 24]
    return ((by_slot["sum"] + SHRINKAGE * prior) / (by_slot["count"] + SHRINKAGE)).to_numpy()


def window_costs(impact: np.ndarray, duration_hours: int) -> np.ndarray:
    """Summed impact of the window starting at each hour of the week (wrapping around Sunday)."""
    wrapped = np.concatenate([impact, impact[: duration_hours - 1]])
    return np.convolve(wrapped, np.ones(duration_hours), mode="valid")[:HOURS_PER_WEEK]


def allowed_starts(duration_hours: int, blackouts: list[Blackout]) -> np.ndarray:
    allowed = np.ones(HOURS_PER_WEEK, dtype=bool)
    for start in range(HOURS_PER_WEEK):
        hours = [(start + k) % HOURS_PER_WEEK for k in range(duration_hours)]
        allowed[start] = not any(b.covers(h) for b in blackouts for h in hours)
    return allowed


def best_window(runs: pd.DataFrame, duration_hours: int, blackouts: list[Blackout]) -> Window:
    hourly = hourly_profile(runs)
    allowed = allowed_starts(duration_hours, blackouts)
    if not allowed.any():
        raise NoAllowedWindow("the blackout windows leave no room for a window of that duration")
    costs = window_costs(expected_impact(hourly), duration_hours)
    candidates = np.where(allowed, costs, np.inf)
    start = int(np.argmin(candidates))
    return Window(
        start_hour_of_week=start,
        duration_hours=duration_hours,
        expected_impact=round(float(costs[start]), 4),
        baseline_impact=round(float(costs[allowed].mean()), 4),
        confidence=_stability(hourly, start, duration_hours, allowed),
    )


def _stability(hourly: pd.DataFrame, start: int, duration_hours: int, allowed: np.ndarray) -> float:
    """Share of past full weeks in which the chosen window ranked in the best 10% of allowed ones."""
    weeks = hourly.groupby((hourly.index - hourly.index[0]).days // 7)
    hits, total = 0, 0
    for _, week in weeks:
        if len(week) < HOURS_PER_WEEK:
            continue
        realised = window_costs(_realised_impact(week), duration_hours)[allowed]
        chosen = window_costs(_realised_impact(week), duration_hours)[start]
        hits += int(chosen <= np.quantile(realised, 0.10))
        total += 1
    return round(hits / total, 2) if total else 0.0


def _realised_impact(week: pd.DataFrame) -> np.ndarray:
    """The impact a single observed week actually had, per hour of week."""
    mean_load = week["load"].mean() or 1.0
    ordered = week.set_index("hour_of_week").reindex(range(HOURS_PER_WEEK)).fillna(0.0)
    return (ordered["load"] / mean_load + FAILURE_WEIGHT * ordered["failed"]).to_numpy()


def regret(chosen_start: int, week: pd.DataFrame, duration_hours: int, allowed: np.ndarray) -> float:
    """Impact lost versus the hindsight-best window of that week, as a share of the mean window."""
    realised = window_costs(_realised_impact(week), duration_hours)
    oracle = float(realised[allowed].min())
    mean = float(realised[allowed].mean())
    return (float(realised[chosen_start]) - oracle) / mean if mean > 0 else 0.0
