"""Pure core of predictive maintenance: features, models, forecasts, costs, windows, alert episodes.

Nothing here does I/O or imports a framework; inputs are pandas frames of runs (columns
`RUN_COLUMNS`) and outputs are plain values.
"""

from __future__ import annotations

import pandas as pd

from aietl.shared.errors import Conflict

# One run as the models read it (the ClickHouse table adds bookkeeping columns).
RUN_COLUMNS = (
    "project_id",
    "pipeline_id",
    "run_id",
    "status",
    "started_at",
    "ended_at",
    "duration_seconds",
    "rows_read",
    "rows_written",
    "error_count",
    "cpu_percent",
    "memory_mb",
    "memory_limit_mb",
    "disk_mb",
    "disk_limit_mb",
    "network_mb",
    "cost_usd",
)


class NotAnswerable(Conflict):
    """A question that cannot be answered honestly yet (HTTP 409); `detail` says what is missing
    (the answer's `context` carries the facts: have, need, unit)."""

    def __init__(self, message: str, **detail: object) -> None:
        super().__init__(message, context=detail)
        self.detail: dict[str, object] = {"message": message, **detail}


class InsufficientHistory(NotAnswerable):
    """Not enough data to answer honestly; says how much more is needed."""

    def __init__(self, message: str, *, have: float, need: float, unit: str) -> None:
        super().__init__(message, have=have, need=need, unit=unit)
        self.have, self.need, self.unit = have, need, unit


def history_days(started_at: pd.Series) -> float:
    """Days spanned by a series of timestamps (0 when empty)."""
    if started_at.empty:
        return 0.0
    return float((started_at.max() - started_at.min()).total_seconds() / 86_400)


def require_history(started_at: pd.Series, min_days: float, what: str) -> None:
    have = history_days(started_at)
    if have < min_days:
        raise InsufficientHistory(
            f"{what} needs {min_days:g} days of run history; {have:.1f} days are stored, "
            f"{min_days - have:.1f} more days are needed",
            have=round(have, 2),
            need=min_days,
            unit="days",
        )
