"""Predict figures: failure prediction latency per pipeline with a warm model, forecast time per series.

In-process and without I/O, so the figures are the service's own compute: features of the
pipeline's history + calibrated forest + explanation (what `GET /predict/failure` adds to a
ClickHouse read), and one seasonal forecast of an hourly series with a 48 h horizon. Also
reports the evaluation figures (held-out time) of `services.predict.evaluate`.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime

from services.predict import evaluate
from services.predict.domain import failure as failure_domain
from services.predict.domain.forecast import forecast
from services.predict.simulator import simulate

PIPELINES = 24
DAYS = 35
LATENCY_ROUNDS = 3


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
    }


def run() -> dict[str, object]:
    sim = simulate(pipelines=PIPELINES, days=DAYS, seed=7)
    started = time.perf_counter()
    model = failure_domain.fit(sim.runs, 24, now=datetime.now(UTC))
    training_seconds = time.perf_counter() - started

    predictions: list[float] = []
    for _ in range(LATENCY_ROUNDS):
        for _, runs in sim.runs.groupby("pipeline_id"):
            recent = runs.tail(24 * 14)  # what the service reads: two weeks of hourly runs
            started = time.perf_counter()
            features = failure_domain.latest_features(recent)
            model.probabilities(features)
            model.factors(features)
            model.tree_agreement(features)
            predictions.append(time.perf_counter() - started)

    forecasts: list[float] = []
    for _, runs in sim.runs.groupby("pipeline_id"):
        series = runs.set_index("started_at")["cpu_percent"].resample("h").mean().interpolate().to_numpy()
        started = time.perf_counter()
        forecast(series, 48, seasons=(24, 168))
        forecasts.append(time.perf_counter() - started)

    figures: dict[str, object] = {
        "training_runs": model.training_runs,
        "failure_model_training_seconds": round(training_seconds, 2),
        **{f"failure_prediction_{k}": v for k, v in _percentiles(predictions).items()},
        **{f"forecast_per_series_{k}": v for k, v in _percentiles(forecasts).items()},
        "forecast_series_hours": len(series),
        "forecast_goal_ms": 50,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # the machine is shared: read timings with it
        "cpu_count": os.cpu_count(),
    }
    figures["evaluation"] = evaluate.run(seed=7, pipelines=PIPELINES, days=DAYS)
    return figures
