"""The PNG of a resource forecast: recent history, the forecast and its interval, the capacity line."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from aietl.services.predict.domain.forecast import Forecast


def forecast_png(body: dict[str, Any], series: pd.Series, result: Forecast) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    times = [point["time"] for point in body["forecast"]]
    figure, axis = pyplot.subplots(figsize=(10, 4), dpi=100)
    axis.plot(
        series.index[-24 * 14 :], series.to_numpy()[-24 * 14 :], color="#444", linewidth=1, label="history"
    )
    axis.plot(times, result.mean, color="#1f77b4", label="forecast")
    axis.fill_between(
        times, result.lower, result.upper, color="#1f77b4", alpha=0.25, label=f"{result.level}% interval"
    )
    if body["capacity"] is not None:
        axis.axhline(body["capacity"], color="#d62728", linestyle="--", label="capacity")
    axis.set_title(f"{body['pipeline_id']}: {body['resource_type']} ({body['unit']})")
    axis.legend(loc="upper left")
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    pyplot.close(figure)
    return buffer.getvalue()
