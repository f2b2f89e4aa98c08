"""Alert episodes: one alert when risk rises past the threshold, silence until it has clearly fallen.

Hysteresis (close only below `threshold - clear_margin`) keeps a probability hovering around the
threshold from opening a new episode at every run. Once a prediction's horizon has passed and
later runs are known, it is scored against what happened (accuracy, prevention, savings).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

Transition = Literal["open", "close", "stay"]


def transition(
    *, episode_open: bool, probability: float, threshold: float, clear_margin: float
) -> Transition:
    if not episode_open and probability >= threshold:
        return "open"
    if episode_open and probability < threshold - clear_margin:
        return "close"
    return "stay"


def window_failed(
    started_at: pd.Series, failed: pd.Series, as_of: datetime, horizon_hours: float
) -> bool | None:
    """Did a failure start in (as_of, as_of + horizon]? None while no run after the window is stored."""
    end = as_of + timedelta(hours=horizon_hours)
    if started_at.empty or started_at.max() < end:
        return None
    inside = (started_at > as_of) & (started_at <= end)
    return bool((inside & failed).any())


def incident_cost(status: pd.Series, cost: pd.Series) -> float:
    """Mean cost of one failure incident (consecutive failed runs) of a pipeline; 0 without any."""
    failed = (status == "failed").to_numpy()
    incidents = int(np.sum(failed & ~np.concatenate(([False], failed[:-1]))))
    if not incidents:
        return 0.0
    return float(cost.fillna(0.0).to_numpy()[failed].sum() / incidents)


def error_rates(counts: dict[tuple[bool, bool], int]) -> tuple[float | None, float | None]:
    """(false-positive rate, false-negative rate) from counts keyed by (predicted failure, failed)."""
    false_positive, true_negative = counts.get((True, False), 0), counts.get((False, False), 0)
    false_negative, true_positive = counts.get((False, True), 0), counts.get((True, True), 0)
    fpr = false_positive / (false_positive + true_negative) if false_positive + true_negative else None
    fnr = false_negative / (false_negative + true_positive) if false_negative + true_positive else None
    return fpr, fnr


OUTCOME_NAMES = {
    (True, True): "true_positive",
    (True, False): "false_positive",
    (False, True): "false_negative",
    (False, False): "true_negative",
}
