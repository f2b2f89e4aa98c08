"""Failure features of a pipeline's recent history, computed at every run (no look-ahead).

All features are relative to the pipeline's own baseline (ratios, rates, headroom), so one model
serves pipelines of very different sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

FEATURES = (
    "failure_rate_24h",
    "failure_rate_7d",
    "recent_failures",
    "consecutive_failures",
    "hours_since_last_success",
    "hours_since_last_failure",
    "error_rate_24h",
    "error_rate_trend",
    "error_rate_recent_trend",
    "duration_drift",
    "duration_trend_6h",
    "duration_per_row_drift",
    "memory_headroom",
    "memory_headroom_6h",
    "memory_trend",
    "memory_drift",
    "memory_hours_to_limit",
    "volume_change",
    "volume_trend_3d",
    "cpu_drift",
    "run_frequency_change",
    "failure_window_share_7d",
)
HOURS_CAP = 24.0 * 14
LOOKBACK_DAYS = 14  # the longest window any feature looks at
KNOWN_WINDOW_HOURS = 24
EPSILON_ERROR_RATE = 1e-3  # errors per 1000 rows: below this, rates count as zero


def pipeline_features(runs: pd.DataFrame) -> pd.DataFrame:
    """One row of features per run of ONE pipeline, indexed by `started_at` (sorted)."""
    runs = runs.sort_values("started_at")
    index = pd.DatetimeIndex(runs["started_at"]).as_unit("ns")
    failed = pd.Series((runs["status"].to_numpy() == "failed").astype(float), index=index)
    rows = pd.Series(runs["rows_read"].to_numpy(dtype=float), index=index)
    errors = pd.Series(runs["error_count"].to_numpy(dtype=float), index=index)
    duration = pd.Series(runs["duration_seconds"].to_numpy(dtype=float), index=index)
    memory = pd.Series(runs["memory_mb"].to_numpy(dtype=float), index=index)
    limit = pd.Series(runs["memory_limit_mb"].to_numpy(dtype=float), index=index)
    cpu = pd.Series(runs["cpu_percent"].to_numpy(dtype=float), index=index)
    ok = 1.0 - failed

    def mean(series: pd.Series, window: str) -> pd.Series:
        return series.rolling(window, min_periods=1).mean()

    def total(series: pd.Series, window: str) -> pd.Series:
        return series.rolling(window, min_periods=1).sum()

    # Baselines use successful runs only: a failure's own numbers are not "normal".
    ok_duration = duration.where(ok > 0)
    ok_memory = memory.where(ok > 0)
    error_rate_24h = 1_000 * total(errors, "24h") / total(rows, "24h").clip(lower=1)
    error_rate_7d = 1_000 * total(errors, "7D") / total(rows, "7D").clip(lower=1)
    duration_7d = ok_duration.rolling("7D", min_periods=1).median()
    per_row = ok_duration / rows.clip(lower=1)
    per_row_baseline = per_row.rolling("14D", min_periods=1).median()
    memory_24h_max = ok_memory.rolling("24h", min_periods=1).max()
    memory_prev = (total(ok_memory.fillna(0), "48h") - total(ok_memory.fillna(0), "24h")) / (
        total(ok_memory.notna().astype(float), "48h") - total(ok_memory.notna().astype(float), "24h")
    ).replace(0, np.nan)
    error_rate_3h = 1_000 * total(errors, "3h") / total(rows, "3h").clip(lower=1)
    memory_trend = (ok_memory.rolling("24h", min_periods=1).mean() - memory_prev) / limit
    headroom = 1 - memory_24h_max / limit
    # Hours until the daily memory peak reaches the limit at its growth over the last three days
    # (capped; no growth: the cap).
    peak_3d_ago = ok_memory.shift(freq="72h").reindex(index, method="ffill")
    growth_per_hour = (memory_24h_max - peak_3d_ago.rolling("24h", min_periods=1).max()) / limit / 72
    hours_to_limit = (
        (headroom / growth_per_hour.where(growth_per_hour > 1e-5)).clip(0, HOURS_CAP).fillna(HOURS_CAP)
    )
    rows_3d_ago = (total(rows, "4D") - total(rows, "3D")) / (
        total(pd.Series(1.0, index=index), "4D") - total(pd.Series(1.0, index=index), "3D")
    ).replace(0, np.nan)
    runs_24h = total(pd.Series(1.0, index=index), "24h")
    runs_7d = total(pd.Series(1.0, index=index), "7D")
    span_days = ((index - index[0]).total_seconds() / 86_400).to_numpy().clip(1, 7)

    def hours_since(mask: pd.Series) -> np.ndarray:
        times = pd.Series(np.where(mask.to_numpy() > 0, _ticks(index), np.nan)).ffill().to_numpy()
        hours = (_ticks(index) - times) / 3.6e12
        return np.where(np.isnan(hours), HOURS_CAP, np.minimum(hours, HOURS_CAP))

    streak = failed.groupby((failed == 0).cumsum()).cumsum()
    features = pd.DataFrame(
        {
            "failure_rate_24h": mean(failed, "24h"),
            "failure_rate_7d": mean(failed, "7D"),
            "recent_failures": failed.rolling(6, min_periods=1).sum(),
            "consecutive_failures": streak,
            "hours_since_last_success": hours_since(ok),
            "hours_since_last_failure": hours_since(failed),
            "error_rate_24h": error_rate_24h,
            "error_rate_trend": np.log(
                (error_rate_24h + EPSILON_ERROR_RATE) / (error_rate_7d + EPSILON_ERROR_RATE)
            ),
            "error_rate_recent_trend": np.log(
                (error_rate_3h + EPSILON_ERROR_RATE) / (error_rate_7d + EPSILON_ERROR_RATE)
            ),
            "duration_drift": np.log(ok_duration.rolling("24h", min_periods=1).mean() / duration_7d),
            "duration_trend_6h": np.log(ok_duration.rolling("6h", min_periods=1).mean() / duration_7d),
            "duration_per_row_drift": np.log(
                per_row.rolling("24h", min_periods=1).median() / per_row_baseline
            ),
            "memory_headroom": headroom,
            "memory_headroom_6h": 1 - ok_memory.rolling("6h", min_periods=1).max() / limit,
            "memory_drift": np.log(
                ok_memory.rolling("24h", min_periods=1).mean()
                / ok_memory.rolling("14D", min_periods=1).median()
            ),
            "memory_trend": memory_trend,
            "memory_hours_to_limit": hours_to_limit,
            "volume_change": np.log(mean(rows, "24h").clip(lower=1) / mean(rows, "7D").clip(lower=1)),
            "volume_trend_3d": np.log(mean(rows, "24h").clip(lower=1) / rows_3d_ago.clip(lower=1)),
            "cpu_drift": np.log(mean(cpu, "24h").clip(lower=0.1) / mean(cpu, "7D").clip(lower=0.1)),
            "run_frequency_change": np.log(runs_24h / (runs_7d / span_days)),
            "failure_window_share_7d": _known_failure_window_share(runs, index),
        },
        index=index,
    )
    return features.replace([np.inf, -np.inf], np.nan).astype(float)


def _known_failure_window_share(runs: pd.DataFrame, index: pd.DatetimeIndex) -> np.ndarray:
    """Share of the pipeline's runs of the past week that were followed by a failure within 24 h,
    counting only runs whose 24 h are over at t (the pipeline's own recent hazard, no look-ahead)."""
    labels = failure_labels(runs, KNOWN_WINDOW_HOURS).to_numpy()
    known_at = pd.Series(np.nan_to_num(labels, nan=0.0), index=index + pd.Timedelta(hours=KNOWN_WINDOW_HOURS))
    counted = pd.Series(~np.isnan(labels), index=known_at.index).astype(float)
    share = known_at.rolling("7D").sum() / counted.rolling("7D").sum().replace(0, np.nan)
    positions = np.searchsorted(_ticks(known_at.index), _ticks(index), side="right") - 1
    return np.where(positions >= 0, share.to_numpy()[np.maximum(positions, 0)], np.nan)


def _ticks(index: pd.Index) -> np.ndarray:
    """A DatetimeIndex as int64 in its unit (`asi8`, which pandas-stubs leaves out)."""
    return index.asi8  # type: ignore[attr-defined]


def failure_labels(runs: pd.DataFrame, horizon_hours: float) -> pd.Series:
    """1 when the pipeline fails within (t, t + horizon]; NaN until that whole window is observed.

    A failure already seen inside a window that is not over yet does not make the row a
    positive: the tail of the history would otherwise hold only positives (its negatives cannot
    be known yet), and a model learning from it would overrate risk.
    """
    runs = runs.sort_values("started_at")
    times = _ticks(pd.DatetimeIndex(runs["started_at"]).as_unit("ns"))
    failed_times = times[runs["status"].to_numpy() == "failed"]
    horizon = int(horizon_hours * 3.6e12)
    padded = np.append(failed_times, np.iinfo(np.int64).max)  # "never" after the last failure
    next_failure = padded[np.searchsorted(failed_times, times, side="right")]
    positive = next_failure <= times + horizon
    observed = times + horizon <= times[-1]
    return pd.Series(
        np.where(observed, positive.astype(float), np.nan),
        index=pd.DatetimeIndex(runs["started_at"]).as_unit("ns"),
    )


def label_column(horizon_hours: float) -> str:
    return f"label_{horizon_hours:g}h"


def training_table(runs: pd.DataFrame, horizons: Sequence[float]) -> pd.DataFrame:
    """Features, one label column per horizon (NaN while unobserved), pipeline and time, for every run."""
    parts = []
    for (project, pipeline), group in runs.groupby(["project_id", "pipeline_id"], sort=False):
        features = pipeline_features(group)
        for horizon in horizons:
            features[label_column(horizon)] = failure_labels(group, horizon).to_numpy()
        features["project_id"], features["pipeline_id"] = str(project), str(pipeline)
        features["time"] = features.index
        parts.append(features.reset_index(drop=True))
    if not parts:
        return pd.DataFrame(columns=[*FEATURES, *(label_column(h) for h in horizons), "pipeline_id", "time"])
    return pd.concat(parts, ignore_index=True)
