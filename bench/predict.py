"""Predict figures on an embedded platform (`aietl up` in a subprocess), over HTTP.

At full size: 60 simulated pipelines, 22 days of runs (about 30,000), bulk-ingested over REST. Then:

- training: the predict worker's trainer picks the history up in the background (10 s after the
  last run arrived) and trains in its own process; the figure is the version's training time, and
  `/health` is polled all along to show the event loop (shared with the gateway) is never blocked;
- failure questions: the first question per pipeline (reads the pipeline's history from chDB and
  computes its features), then warm questions (the model in memory, the pipeline's features
  cached until it gets a new run), p50 / p99 over HTTP with a keep-alive client;
- a resource forecast per series, in-process (the compute behind `GET /resources`): warm, and the
  cold start of a fresh interpreter (imports, then its first two calls).

Sizes come from the harness's scale (`run(scale)`, `scale.count(full, smoke=...)` of `bench.Scale`;
`AIETL_BENCH_SCALE=smoke` is the CI run), never fewer pipelines than a model can be trained on. The
harness reports the load averages beside the figures: the machine may be shared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import psutil

from aietl.services.predict.domain.forecast import forecast
from aietl.services.predict.simulator import simulate
from aietl.shared.embedded_broker import free_port
from bench import Scale

DAYS = 22  # more than MIN_HISTORICAL_DAYS (14), the spec's minimum before any prediction
MIN_PIPELINES = 8  # the validation slice then holds failures of every horizon, even at a tiny scale
MIN_TREES = 10  # the least AIETL_PREDICT_FOREST_TREES accepts
PASSWORD = "bench-password-1"  # noqa: S105 - the throwaway platform's admin
PROJECT = "bench"
BASE = "/api/v1/advanced/predict"
TRAINING_TIMEOUT_SECONDS = 1_800
COLD_START = """
import json, time
started = time.perf_counter()
import numpy as np
from aietl.services.predict.domain.forecast import forecast
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


@dataclass(frozen=True)
class _Sizes:
    pipelines: int
    warm_rounds: int
    trees: int

    @classmethod
    def of(cls, scale: Scale) -> _Sizes:
        return cls(
            pipelines=max(MIN_PIPELINES, scale.count(60, smoke=MIN_PIPELINES)),
            warm_rounds=scale.count(10, smoke=2),
            trees=max(MIN_TREES, scale.count(100, smoke=MIN_TREES)),
        )


def _percentiles(samples: list[float], prefix: str) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        f"{prefix}_p50_ms": round(1000 * statistics.median(ordered), 2),
        f"{prefix}_p99_ms": round(1000 * ordered[max(0, int(0.99 * len(ordered)) - 1)], 2),
        f"{prefix}_count": len(ordered),
    }


def _start_platform(folder: str, trees: int) -> tuple[subprocess.Popen[bytes], str]:
    port, broker_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
    env |= {"AIETL_ADMIN_PASSWORD": PASSWORD, "AIETL_PREDICT_FOREST_TREES": str(trees)}
    command = [sys.executable, "-m", "aietl.services.cli", "up", "--data-dir", folder]
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [*command, "--port", str(port), "--broker-port", str(broker_port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() - started > 180:
            process.terminate()
            raise RuntimeError("aietl up did not become ready")
        time.sleep(0.2)


def _ingest(http: httpx.Client, pipelines: int) -> int:
    runs = simulate(project_id=PROJECT, pipelines=pipelines, days=DAYS, seed=7, start=_start()).runs
    payload = json.loads(runs.drop(columns=["project_id"]).to_json(orient="records", date_format="iso"))
    for offset in range(0, len(payload), 10_000):
        response = http.post(
            f"{BASE}/runs", params={"project_id": PROJECT}, json={"runs": payload[offset : offset + 10_000]}
        )
        response.raise_for_status()
    return len(payload)


def _start() -> datetime:
    import pandas as pd

    return (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=DAYS)).floor("h").to_pydatetime()


def _await_model(http: httpx.Client, url: str, runs: int) -> dict[str, Any]:
    """Wait for a version trained on the whole history, polling /health on its own connection all
    along (the event loop's latency while the trainer works)."""
    health: list[float] = []
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=30) as probe:
        while time.monotonic() - started < TRAINING_TIMEOUT_SECONDS:
            began = time.perf_counter()
            probe.get("/health").raise_for_status()
            health.append(time.perf_counter() - began)
            versions = http.get(f"{BASE}/models").json()["versions"]
            for version in versions:
                whole = version["status"] == "ready" and version["training_runs"] >= runs
                if whole or version["status"] in ("refused", "failed"):
                    return {"version": version, "health": health, "wall_seconds": time.monotonic() - started}
            time.sleep(0.05)
    raise RuntimeError("no model version within the timeout")


def _questions(
    http: httpx.Client, server: psutil.Process, pipelines: int, warm_rounds: int
) -> dict[str, Any]:
    """First and warm failure questions over HTTP; beside the latency, the platform process's CPU
    time per warm question, which the load of other processes on the machine does not inflate."""
    names = [f"pipeline-{index:03d}" for index in range(pipelines)]
    params: dict[str, str | int] = {"project_id": PROJECT, "horizon_hours": 24}

    def ask(pipeline: str) -> float:
        began = time.perf_counter()
        response = http.get(f"{BASE}/failure/{pipeline}", params=params)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"failure question for {pipeline}: {response.status_code} {response.text}")
        return elapsed

    first = [ask(pipeline) for pipeline in names]
    cpu_before = server.cpu_times()
    warm = [ask(pipeline) for _ in range(warm_rounds) for pipeline in names]
    cpu_after = server.cpu_times()
    server_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    figures = {**_percentiles(first, "failure_first_question"), **_percentiles(warm, "failure_warm_question")}
    figures["failure_warm_question_server_cpu_ms"] = round(1000 * server_cpu / len(warm), 2)
    figures["failure_warm_goal_p99_ms"] = 20
    figures["failure_warm_goal_met"] = figures["failure_warm_question_p99_ms"] <= 20
    return figures


def _forecasts(scale: Scale) -> dict[str, Any]:
    runs = simulate(pipelines=scale.count(4, smoke=1), days=35, seed=7).runs
    series = [
        group.set_index("started_at")[column].astype(float).resample("h").mean().interpolate().to_numpy()
        for _, group in runs.groupby("pipeline_id")
        for column in ("cpu_percent", "memory_mb", "disk_mb", "network_mb")
    ]
    forecast(series[0], 48, seasons=(24, 168))  # warm, as a worker that has served one
    wall = []
    for values in series:
        began = time.perf_counter()
        forecast(values, 48, seasons=(24, 168))
        wall.append(time.perf_counter() - began)
    return {**_percentiles(wall, "forecast_warm_in_process"), **_cold_start()}


def _cold_start() -> dict[str, float]:
    """Import time and the first two forecasts of a fresh interpreter (what a new worker pays once)."""
    output = subprocess.run(  # noqa: S603 - this interpreter running our own snippet
        [sys.executable, "-c", COLD_START], capture_output=True, text=True, check=True
    ).stdout
    return {
        f"forecast_cold_{key}": round(value, 2) for key, value in json.loads(output.splitlines()[-1]).items()
    }


def _platform_figures(http: httpx.Client, url: str, server: psutil.Process, sizes: _Sizes) -> dict[str, Any]:
    token = http.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    http.post("/api/v1/projects", json={"id": PROJECT, "name": PROJECT}).raise_for_status()
    began = time.perf_counter()
    stored = _ingest(http, sizes.pipelines)
    ingest_seconds = time.perf_counter() - began
    trained = _await_model(http, url, stored)
    version = trained["version"]
    if version["status"] != "ready":
        raise RuntimeError(
            f"the trainer did not produce a model: {version['status']} {version.get('detail')}"
        )
    return {
        "pipelines": sizes.pipelines,
        "runs": stored,
        "trees_per_horizon": sizes.trees,
        "bulk_ingest_seconds": round(ingest_seconds, 2),
        "training_seconds": version["training_seconds"],
        "training_cpu_seconds": version["training_cpu_seconds"],
        "training_horizons_hours": version["horizons_hours"],
        "training_validation_24h": {
            k: version["validation"].get("24h", {}).get(k)
            for k in ("roc_auc", "pr_auc", "recall_at_5pct_fpr")
        },
        "model_bytes": version["model_bytes"],
        "ingest_to_model_seconds": round(trained["wall_seconds"], 1),
        **{
            k.replace("_ms", "_ms_during_training"): v
            for k, v in _percentiles(trained["health"], "health").items()
        },
        "health_max_ms_during_training": round(1000 * max(trained["health"]), 2),
        **_questions(http, server, sizes.pipelines, sizes.warm_rounds),
    }


def run(scale: Scale) -> dict[str, Any]:
    sizes = _Sizes.of(scale)
    with tempfile.TemporaryDirectory() as folder:
        process, url = _start_platform(folder, sizes.trees)
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                figures = _platform_figures(http, url, psutil.Process(process.pid), sizes)
        finally:
            process.terminate()
            try:
                process.wait(60)
                clean_stop = True
            except subprocess.TimeoutExpired:
                process.kill()
                clean_stop = False
    figures["stopped_within_60_s_of_sigterm"] = clean_stop
    figures |= _forecasts(scale)
    figures["cpu_count"] = os.cpu_count()
    return figures
