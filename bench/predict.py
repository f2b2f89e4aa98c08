"""Predict figures: failure prediction latency per pipeline with a warm model, forecast time per series.

In-process and without I/O, so the figures are the service's own compute: features of the
pipeline's history + calibrated forest + explanation (what `GET /predict/failure` adds to a
ClickHouse read), and one seasonal forecast (with its interval calibration) of an hourly series
with a 48 h horizon. Forecast latency is measured warm, as a worker serves it; the cold start (a
fresh interpreter: imports, then the first call) is reported separately, and CPU time next to
wall time because the machine is shared. Also reports the evaluation figures (held-out time) of
`services.predict.evaluate`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import Scale
from services.predict import evaluate
from services.predict.domain import failure as failure_domain
from services.predict.domain.forecast import forecast
from services.predict.simulator import simulate

DAYS = 35  # the maintenance-window evaluation needs five weeks
LATENCY_ROUNDS = 3

COLD_START = """
import json, time
started = time.perf_counter()
import numpy as np
from services.predict.domain.forecast import forecast
imported = time.perf_counter()
hours = np.arange(840)
series = 50 + 10 * np.sin(2 * np.pi * hours / 24) + np.random.default_rng(0).normal(0, 1, 840)
calls = []
for _ in range(2):
    began = time.perf_counter()
    forecast(series, 48, seasons=(24, 168))
    calls.append(time.perf_counter() - began)
figures = {"import_seconds": imported - started, "first_ms": 1000 * calls[0], "second_ms": 1000 * calls[1]}
print(json.dumps(figures))
"""


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
    }


def run(scale: Scale) -> dict[str, object]:
    pipelines, trees = scale.count(24, smoke=3), scale.count(150, smoke=10)
    sim = simulate(pipelines=pipelines, days=DAYS, seed=7)
    started = time.perf_counter()
    model = failure_domain.fit(sim.runs, 24, now=datetime.now(UTC), trees=trees)
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

    series = [
        runs.set_index("started_at")[column].astype(float).resample("h").mean().interpolate().to_numpy()
        for _, runs in sim.runs.groupby("pipeline_id")
        for column in evaluate.RESOURCES
    ]
    forecast(series[0], 48, seasons=(24, 168))  # the worker has served one before: measure warm calls
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(scale.count(2, smoke=1)):
        for values in series:
            started, started_cpu = time.perf_counter(), time.process_time()
            forecast(values, 48, seasons=(24, 168))
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)

    figures: dict[str, object] = {
        "training_runs": model.training_runs,
        "failure_model_training_seconds": round(training_seconds, 2),
        **{f"failure_prediction_{k}": v for k, v in _percentiles(predictions).items()},
        **{f"forecast_warm_{k}": v for k, v in _percentiles(wall).items()},
        "forecast_warm_cpu_p50_ms": round(1000 * statistics.median(cpu), 2),
        "forecast_calls": len(wall),
        "forecast_series_hours": len(series[0]),
        "forecast_goal_ms": 50,
        **{f"forecast_cold_{k}": v for k, v in _cold_start().items()},
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # the machine is shared: read timings with it
        "cpu_count": os.cpu_count(),
    }
    figures["evaluation"] = evaluate.run(seed=7, pipelines=pipelines, days=DAYS, trees=trees)
    return figures


def _cold_start() -> dict[str, float]:
    """Import time and the first two forecasts of a fresh interpreter (what a new worker pays once)."""
    output = subprocess.run(  # noqa: S603 - this interpreter running our own snippet
        [sys.executable, "-c", COLD_START], capture_output=True, text=True, check=True
    ).stdout
    return {key: round(value, 2) for key, value in json.loads(output.splitlines()[-1]).items()}
