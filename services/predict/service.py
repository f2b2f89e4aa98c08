"""The predict service's use cases: ingest runs, answer predictions, keep models fresh, raise alerts.

Shared by the worker and the API routes of a process through `Runtime.component`, so the model
cache and the batch writer are one per process.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import structlog
from sqlalchemy import select

from services.predict import store as run_store
from services.predict.config import PredictSettings
from services.predict.domain import InsufficientHistory, history_days, require_history
from services.predict.domain import costs as cost_domain
from services.predict.domain import failure as failure_domain
from services.predict.domain import window as window_domain
from services.predict.domain.alerts import transition
from services.predict.domain.features import LOOKBACK_DAYS
from services.predict.domain.forecast import Forecast, forecast
from services.predict.store import MetricsStore
from services.predict.tables import AlertEpisode
from services.runtime import Runtime
from shared import metrics
from shared.bus import publish_event
from shared.events import MaintenanceAlert, PipelineRunMetrics

log = structlog.get_logger(__name__)

RESOURCE_COLUMNS = {"cpu": "cpu_percent", "memory": "memory_mb", "disk": "disk_mb", "network": "network_mb"}
RESOURCE_UNITS = {"cpu": "percent", "memory": "MB", "disk": "MB", "network": "MB"}
COMPONENT = "predict.service"
MIN_NEW_RUNS_TO_RETRY = 100  # after a refused training, wait for this many new runs (or the interval)


class PipelineNotFound(LookupError):
    pass


class BatchWriter:
    """Group commit: a caller waits until its rows are stored; rows arriving meanwhile go together next."""

    def __init__(self, write: Callable[[list[Sequence[object]]], Awaitable[None]], max_rows: int) -> None:
        self._write = write
        self._max_rows = max_rows
        self._pending: list[tuple[list[Sequence[object]], asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0

    async def write(self, rows: list[Sequence[object]]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._pending:
            batch, size = [], 0
            while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max_rows):
                rows, future = self._pending.pop(0)
                batch.append((rows, future))
                size += len(rows)
            try:
                await self._write([row for rows, _ in batch for row in rows])
                self.batches += 1
            except Exception as error:  # every waiting caller sees the failure and its handler retries
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


@dataclass
class _CachedModel:
    model: failure_domain.FailureModel
    runs_seen: int


class PredictService:
    def __init__(self, runtime: Runtime, config: PredictSettings | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.config = config or PredictSettings()
        self.store = MetricsStore(runtime.clickhouse())
        self.writer = BatchWriter(self.store.insert, self.config.insert_batch_max)
        self._models: dict[float, _CachedModel] = {}
        self._refusals: dict[float, tuple[datetime, int, InsufficientHistory]] = {}
        self._training = asyncio.Lock()
        self._runs_ingested = 0
        self._alert_locks: dict[tuple[str, str], asyncio.Lock] = {}

    @property
    def min_days(self) -> float:
        return float(self.settings.min_historical_days)

    @property
    def feature_days(self) -> float:
        """History a failure prediction reads: what the features look at, or the minimum if longer."""
        return max(float(LOOKBACK_DAYS), self.min_days + 1)

    # --- ingest ---
    async def ingest(self, events: Sequence[PipelineRunMetrics]) -> int:
        now = datetime.now(UTC)
        await self.writer.write([run_store.row_of(event, now) for event in events])
        self._runs_ingested += len(events)
        return len(events)

    # --- failure ---
    async def model(self, horizon_hours: float) -> failure_domain.FailureModel:
        """The cached model for this horizon; retrained when old or after enough new runs."""
        async with self._training:
            cached = self._models.get(horizon_hours)
            now = datetime.now(UTC)
            if cached is not None and not self._stale(cached, now):
                return cached.model
            refusal = self._refusals.get(horizon_hours)
            if cached is None and refusal is not None and not self._worth_retrying(refusal, now):
                raise refusal[2]  # the data has not changed enough to change the answer
            runs = await self.store.all_runs(now - timedelta(days=self.config.training_days))
            seen = self._runs_ingested
            try:
                model = await asyncio.to_thread(
                    failure_domain.fit, runs, horizon_hours, now=now, trees=self.config.forest_trees
                )
            except InsufficientHistory as error:
                self._refusals[horizon_hours] = (now, seen, error)
                if cached is None:
                    raise
                return cached.model  # keep serving the last good model
            self._models[horizon_hours] = _CachedModel(model, seen)
            log.info("failure model trained", horizon_hours=horizon_hours, runs=model.training_runs)
            return model

    def _worth_retrying(self, refusal: tuple[datetime, int, InsufficientHistory], now: datetime) -> bool:
        at, seen, _ = refusal
        return (
            now - at > timedelta(hours=self.config.retrain_interval_hours)
            or self._runs_ingested - seen >= MIN_NEW_RUNS_TO_RETRY
        )

    def _stale(self, cached: _CachedModel, now: datetime) -> bool:
        age = now - cached.model.trained_at
        new_runs = self._runs_ingested - cached.runs_seen
        return age > timedelta(hours=self.config.retrain_interval_hours) or (
            new_runs >= self.config.retrain_new_runs_share * cached.model.training_runs
        )

    async def pipeline_history(self, project_id: str, pipeline_id: str, days: float) -> pd.DataFrame:
        since = datetime.now(UTC) - timedelta(days=days)
        runs = await self.store.pipeline_runs(project_id, pipeline_id, since)
        if runs.empty:
            raise PipelineNotFound(f"no runs of pipeline {pipeline_id!r} in project {project_id!r}")
        return runs

    async def failure(self, project_id: str, pipeline_id: str, horizon_hours: float) -> dict[str, Any]:
        runs = await self.pipeline_history(project_id, pipeline_id, self.feature_days)
        require_history(runs["started_at"], self.min_days, "a failure prediction")
        model = await self.model(horizon_hours)
        features = failure_domain.latest_features(runs)
        probability = float(model.probabilities(features)[0])
        factors = model.factors(features)
        coverage = min(1.0, history_days(runs["started_at"]) / (2 * self.min_days))
        metrics.PREDICTIONS.labels(kind="failure").inc()
        return {
            "pipeline_id": pipeline_id,
            "project_id": project_id,
            "horizon_hours": horizon_hours,
            "failure_probability": round(probability, 4),
            "confidence_score": round(model.tree_agreement(features) * coverage, 3),
            "severity": failure_domain.severity_of(probability),
            "description": failure_domain.describe(pipeline_id, probability, horizon_hours, factors),
            "contributing_factors": [
                {
                    "factor": f.factor,
                    "current_value": None if np.isnan(f.current_value) else f.current_value,
                    "threshold": f.threshold,
                    "severity": f.severity,
                    "contribution": f.contribution,
                }
                for f in factors
            ],
            "recommended_actions": failure_domain.recommended_actions(factors),
            "prevention_window_hours": failure_domain.prevention_window_hours(
                probability, horizon_hours, features
            ),
            "as_of": runs["started_at"].max().to_pydatetime(),
            "model": {
                "trained_at": model.trained_at,
                "training_runs": model.training_runs,
                "validation_roc_auc": None
                if model.validation_auc is None
                else round(model.validation_auc, 3),
            },
        }

    # --- alerts ---
    async def evaluate_alerts(self, project_id: str, pipeline_id: str) -> MaintenanceAlert | None:
        """Open an episode (alert published once) when risk crosses the threshold; close on a clear drop."""
        horizon = float(self.config.alert_horizon_hours)
        try:
            runs = await self.pipeline_history(project_id, pipeline_id, self.feature_days)
            require_history(runs["started_at"], self.min_days, "an alert")
            model = await self.model(horizon)
        except (InsufficientHistory, PipelineNotFound):
            return None
        features = failure_domain.latest_features(runs)
        probability = float(model.probabilities(features)[0])
        lock = self._alert_locks.setdefault((project_id, pipeline_id), asyncio.Lock())
        async with lock:
            return await self._apply_transition(project_id, pipeline_id, probability, model, features)

    async def _apply_transition(
        self,
        project_id: str,
        pipeline_id: str,
        probability: float,
        model: failure_domain.FailureModel,
        features: pd.DataFrame,
    ) -> MaintenanceAlert | None:
        threshold = self.config.alert_threshold
        async with self.runtime.database.transaction() as session:
            episode = await session.scalar(
                select(AlertEpisode).where(
                    AlertEpisode.project_id == project_id,
                    AlertEpisode.pipeline_id == pipeline_id,
                    AlertEpisode.alert_type == "failure_risk",
                    AlertEpisode.closed_at.is_(None),
                )
            )
            step = transition(
                episode_open=episode is not None,
                probability=probability,
                threshold=threshold,
                clear_margin=self.config.alert_clear_margin,
            )
            if step == "open":
                factors = model.factors(features)
                alert = MaintenanceAlert(
                    project_id=project_id,
                    pipeline_id=pipeline_id,
                    alert_type="failure_risk",
                    probability=round(probability, 4),
                    threshold=threshold,
                    severity=failure_domain.severity_of(probability),  # type: ignore[arg-type]
                    description=failure_domain.describe(
                        pipeline_id, probability, model.horizon_hours, factors
                    ),
                    episode_started_at=datetime.now(UTC),
                )
                episode = AlertEpisode(
                    project_id=project_id,
                    pipeline_id=pipeline_id,
                    alert_type="failure_risk",
                    peak_probability=probability,
                    alert=alert.model_dump(mode="json"),
                )
                session.add(episode)
            elif step == "close" and episode is not None:
                episode.closed_at = datetime.now(UTC)
            elif episode is not None:
                episode.peak_probability = max(episode.peak_probability, probability)
            pending = (
                episode if episode is not None and episode.published_at is None and step != "close" else None
            )
        if pending is None:
            return None
        alert = MaintenanceAlert.model_validate(pending.alert)
        await publish_event(self.runtime.broker, alert)
        async with self.runtime.database.transaction() as session:
            stored = await session.get(AlertEpisode, pending.id)
            if stored is not None:
                stored.published_at = datetime.now(UTC)
        metrics.MAINTENANCE_ALERTS.labels(alert_type=alert.alert_type, severity=alert.severity).inc()
        log.info("maintenance alert published", pipeline_id=pipeline_id, probability=alert.probability)
        return alert

    # --- resources ---
    async def resource_forecast(
        self, project_id: str, pipeline_id: str, resource: str, hours: int, capacity: float | None
    ) -> tuple[dict[str, Any], pd.Series, Forecast]:
        runs = await self.pipeline_history(project_id, pipeline_id, self.config.forecast_history_hours / 24)
        column = RESOURCE_COLUMNS[resource]
        observed = runs.dropna(subset=[column])
        require_history(observed["started_at"], self.min_days, f"a {resource} forecast")
        series = (
            observed.set_index("started_at")[column]
            .astype(float)
            .resample("h")
            .mean()
            .interpolate(limit_direction="both")
        )
        result = await asyncio.to_thread(forecast, series.to_numpy(), hours, seasons=(24, 168))
        times = pd.date_range(series.index[-1] + pd.Timedelta(hours=1), periods=hours, freq="h")
        capacity = capacity if capacity is not None else _capacity(runs, resource)
        peak = int(np.argmax(result.mean))
        exceed = None if capacity is None else result.exceedance_probability(capacity)
        metrics.PREDICTIONS.labels(kind="resources").inc()
        body = {
            "pipeline_id": pipeline_id,
            "resource_type": resource,
            "unit": RESOURCE_UNITS[resource],
            "model": _model_name(result),
            "history_hours": len(series),
            "interval_level": result.level,
            "forecast": [
                {
                    "time": t.to_pydatetime(),
                    "mean": round(float(m), 4),
                    "lower": round(float(lo), 4),
                    "upper": round(float(hi), 4),
                }
                for t, m, lo, hi in zip(times, result.mean, result.lower, result.upper, strict=True)
            ],
            "predicted_peak": {
                "value": round(float(result.mean[peak]), 4),
                "upper": round(float(result.upper[peak]), 4),
                "at": times[peak].to_pydatetime(),
            },
            "capacity": capacity,
            "probability_exceed_capacity": None if exceed is None else round(float(exceed.max()), 4),
            "first_likely_exceedance_at": None
            if exceed is None or not np.any(exceed >= 0.5)
            else times[int(np.argmax(exceed >= 0.5))].to_pydatetime(),
        }
        return body, series, result

    async def resource_plot(
        self, project_id: str, pipeline_id: str, resource: str, hours: int, capacity: float | None
    ) -> bytes:
        body, series, result = await self.resource_forecast(
            project_id, pipeline_id, resource, hours, capacity
        )
        return await asyncio.to_thread(_plot, body, series, result)

    # --- costs ---
    async def costs(self, project_id: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        runs = await self.store.project_runs(project_id, now - timedelta(days=self.config.training_days))
        runs = runs[runs["cost_usd"].notna()] if not runs.empty else runs
        if runs.empty:
            raise InsufficientHistory(
                f"cost predictions need {self.min_days:g} days of runs with cost_usd; none are stored",
                have=0,
                need=self.min_days,
                unit="days",
            )
        require_history(runs["started_at"], self.min_days, "a cost prediction")
        daily = cost_domain.daily_costs(runs)
        daily = daily[daily["day"] < pd.Timestamp(now).normalize()]  # today is not over yet
        if daily.empty:
            raise InsufficientHistory("no complete day of costs yet", have=0, need=1, unit="days")
        found = cost_domain.anomalies(daily)
        current, monthly, (low, high) = cost_domain.project_outlook(daily)
        saving = cost_domain.savings(daily, found)
        metrics.PREDICTIONS.labels(kind="costs").inc()
        return {
            "project_id": project_id,
            "currency": "USD",
            "current_daily_cost": round(current, 2),
            "as_of_day": daily["day"].max().date(),
            "predicted_monthly_cost": round(monthly, 2),
            "predicted_monthly_interval_80": [round(low, 2), round(high, 2)],
            "anomalies": [
                {
                    "pipeline_id": a.pipeline_id,
                    "date": a.day,
                    "cost_usd": a.cost_usd,
                    "expected_usd": a.expected_usd,
                    "robust_z": a.robust_z,
                    "isolation_forest": a.isolation_forest,
                    "detected_by": list(a.detected_by),
                }
                for a in found
            ],
            "estimated_savings": round(sum(s.amount_usd for s in saving), 2),
            "savings": [{"amount_usd": s.amount_usd, "reasoning": s.reasoning} for s in saving],
        }

    # --- maintenance window ---
    async def maintenance_window(
        self, project_id: str, pipeline_id: str, duration_hours: int, blackouts: list[window_domain.Blackout]
    ) -> dict[str, Any]:
        runs = await self.pipeline_history(project_id, pipeline_id, self.config.training_days)
        require_history(runs["started_at"], self.min_days, "a maintenance window")
        chosen = window_domain.best_window(runs, duration_hours, blackouts)
        now = datetime.now(UTC)
        week_start = (pd.Timestamp(now).normalize() - pd.Timedelta(days=now.weekday())).to_pydatetime()
        next_start = week_start + timedelta(hours=chosen.start_hour_of_week)
        if next_start <= now:
            next_start += timedelta(days=7)
        metrics.PREDICTIONS.labels(kind="maintenance_window").inc()
        return {
            "pipeline_id": pipeline_id,
            "window": chosen.label,
            "start_hour_of_week": chosen.start_hour_of_week,
            "duration_hours": duration_hours,
            "next_start": next_start,
            "next_end": next_start + timedelta(hours=duration_hours),
            "expected_impact": chosen.expected_impact,
            "average_window_impact": chosen.baseline_impact,
            "confidence": chosen.confidence,
            "blackouts_respected": len(blackouts),
        }


def _capacity(runs: pd.DataFrame, resource: str) -> float | None:
    if resource == "cpu":
        return 100.0
    column = {"memory": "memory_limit_mb", "disk": "disk_limit_mb"}.get(resource)
    if column is None:
        return None
    limits = runs[column].dropna()
    return None if limits.empty else float(limits.iloc[-1])


def _model_name(result: Forecast) -> str:
    seasons = "+".join(f"{m}h" for m in result.seasons) or "none"
    interval = (
        f"interval calibrated on {result.calibration_origins} backtest origins"
        if result.calibration_origins
        else "model interval (too little history to calibrate)"
    )
    return (
        f"seasonal profile ({seasons}) + statsforecast AutoETS{' on log scale' if result.log_scale else ''}; "
        + interval
    )


def _plot(body: dict[str, Any], series: pd.Series, result: Forecast) -> bytes:
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


def get_service(runtime: Runtime) -> PredictService:
    return runtime.component(COMPONENT, lambda: PredictService(runtime))
