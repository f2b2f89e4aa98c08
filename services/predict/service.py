"""The predict service's use cases: ingest runs, answer predictions from the latest model, raise alerts.

Shared by the worker and the API routes of a process through `Runtime.component`, so the model in
memory, the pipeline cache and the batch writer are one per process. Models are never trained
here: the predict worker's trainer (`trainer.py`) trains them in a separate process and stores
them in the registry; a question uses the latest ready version, or answers 409 saying why there
is none and when there will be one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import structlog

from aietl.services.predict import store as run_store
from aietl.services.predict.config import PredictSettings
from aietl.services.predict.domain import InsufficientHistory, NotAnswerable, history_days, require_history
from aietl.services.predict.domain import costs as cost_domain
from aietl.services.predict.domain import failure as failure_domain
from aietl.services.predict.domain import window as window_domain
from aietl.services.predict.domain.features import LOOKBACK_DAYS
from aietl.services.predict.domain.forecast import Forecast, forecast
from aietl.services.predict.episodes import AlertEpisodes
from aietl.services.predict.outcomes import Outcomes
from aietl.services.predict.plot import forecast_png
from aietl.services.predict.registry import ModelRegistry
from aietl.services.predict.store import MetricsStore
from aietl.services.predict.writer import BatchWriter
from aietl.services.runtime import Runtime
from aietl.shared import metrics
from aietl.shared.errors import NotFound
from aietl.shared.events import MaintenanceAlert, PipelineRunMetrics

log = structlog.get_logger(__name__)

RESOURCE_COLUMNS = {"cpu": "cpu_percent", "memory": "memory_mb", "disk": "disk_mb", "network": "network_mb"}
RESOURCE_UNITS = {"cpu": "percent", "memory": "MB", "disk": "MB", "network": "MB"}
COMPONENT = "predict.service"
MIN_NEW_RUNS_TO_RETRY = 100  # after a refused training, wait for this many new runs (or the interval)
MAX_CACHED_PIPELINES = 10_000


class PipelineNotFound(NotFound, LookupError):
    """No runs of the pipeline in the project."""


class ModelNotReady(NotAnswerable):
    """No failure model has been trained yet (409 with why and when one is expected)."""


@dataclass(frozen=True)
class _PipelineEntry:
    """A pipeline's latest features, and what each model version made of them (computed once)."""

    state: failure_domain.PipelineState
    history_days: float
    as_of: datetime
    loaded_at: float
    curves: dict[int, failure_domain.SurvivalCurve] = field(default_factory=dict)
    factors: dict[tuple[int, float], list[failure_domain.Factor]] = field(default_factory=dict)

    def curve(self, version: int, model: failure_domain.FailureModel) -> failure_domain.SurvivalCurve:
        if version not in self.curves:
            self.curves.clear()  # only the version in use matters
            self.curves[version] = model.curve(self.state.latest)
        return self.curves[version]

    def factors_of(
        self, version: int, model: failure_domain.FailureModel, horizon_hours: float
    ) -> list[failure_domain.Factor]:
        key = (version, model.explaining_model(horizon_hours).horizon_hours)
        if key not in self.factors:
            self.factors[key] = model.factors(self.state.latest, self.state.usual, horizon_hours)
        return self.factors[key]


class PredictService:
    def __init__(self, runtime: Runtime, config: PredictSettings | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.config = config or PredictSettings()
        self.store = MetricsStore(runtime.clickhouse())
        self.registry = ModelRegistry(runtime.database)
        self.outcomes = Outcomes(self)
        self.episodes = AlertEpisodes(self)
        self.writer = BatchWriter(self.store.insert, self.config.insert_batch_max)
        self._model: tuple[int, failure_domain.FailureModel] | None = None
        self._model_checked = float("-inf")
        self._model_lock = asyncio.Lock()
        self._pipelines: dict[tuple[str, str], _PipelineEntry] = {}
        self._alert_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.runs_arrived = asyncio.Event()  # wakes this process's trainer (if it runs one)

    @property
    def min_days(self) -> float:
        return float(self.settings.min_historical_days)

    @property
    def feature_days(self) -> float:
        """History a failure prediction reads: what the features look at, or the minimum if longer."""
        return max(float(LOOKBACK_DAYS), self.min_days + 1)

    @property
    def max_horizon_hours(self) -> int:
        """PREDICTION_HORIZON_DAYS: the default and the longest horizon of every prediction."""
        return 24 * self.settings.prediction_horizon_days

    def training_horizons(self) -> tuple[float, ...]:
        return failure_domain.horizon_grid(self.max_horizon_hours, (self.config.alert_horizon_hours, 24))

    # --- ingest ---
    async def ingest(self, events: Sequence[PipelineRunMetrics]) -> int:
        now = datetime.now(UTC)
        await self.writer.write([run_store.row_of(event, now) for event in events])
        for event in events:
            self._pipelines.pop((event.project_id, event.pipeline_id), None)
        self.runs_arrived.set()
        return len(events)

    # --- the failure model ---
    async def current_model(self) -> tuple[int, failure_domain.FailureModel]:
        """The latest ready model of the registry (checked every `model_refresh_seconds`)."""
        if self._model is None or time.monotonic() - self._model_checked > self.config.model_refresh_seconds:
            async with self._model_lock:
                if (
                    self._model is None
                    or time.monotonic() - self._model_checked > self.config.model_refresh_seconds
                ):
                    await self._refresh_model()
        if self._model is None:
            raise await self._not_ready()
        return self._model

    async def _refresh_model(self) -> None:
        latest = await self.registry.latest_ready_id()
        self._model_checked = time.monotonic()
        if latest is None or (self._model is not None and self._model[0] == latest):
            return
        blob = await self.registry.model_bytes(latest)
        if blob is None:
            return
        try:
            model = await asyncio.to_thread(failure_domain.FailureModel.from_bytes, blob)
        except ValueError as error:  # other features (an older release): the trainer replaces it
            log.warning("stored failure model not usable", version=latest, error=str(error))
            return
        self.use_model(latest, model)

    def use_model(self, version: int, model: failure_domain.FailureModel) -> None:
        self._model = (version, model)
        self._model_checked = time.monotonic()
        for horizon, part in model.horizons.items():
            for name in ("roc_auc", "pr_auc", "recall_at_5pct_fpr"):
                if name in part.metrics:
                    metrics.FAILURE_MODEL_VALIDATION.labels(horizon_hours=f"{horizon:g}", metric=name).set(
                        float(part.metrics[name])  # type: ignore[arg-type]
                    )

    async def _not_ready(self) -> ModelNotReady:
        now = datetime.now(UTC)
        check = timedelta(seconds=self.config.trainer_check_seconds)
        running = await self.registry.running(now)
        if running is not None:
            last = await self.registry.latest("ready")
            took = timedelta(seconds=last.training_seconds or 0) if last is not None else None
            expected = running.started_at + took if took else None
            return ModelNotReady(
                "the failure model is being trained (started "
                f"{running.started_at:%Y-%m-%d %H:%M:%S} UTC)"
                + (f"; it should be ready by {expected:%H:%M:%S} UTC" if expected else "")
                + "; ask again then",
                missing="a trained failure model",
                training_started_at=running.started_at,
                expected_ready_at=expected,
            )
        attempt = await self.registry.latest()
        if attempt is not None and attempt.status in ("refused", "failed"):
            retry_at = (attempt.finished_at or now) + timedelta(hours=self.config.retrain_interval_hours)
            reason = attempt.detail.get("message", "training failed")
            return ModelNotReady(
                f"no failure model yet: {reason}. Training is tried again when "
                f"{MIN_NEW_RUNS_TO_RETRY} more runs are stored, or at {retry_at:%Y-%m-%d %H:%M} UTC",
                missing=reason,
                **{k: v for k, v in attempt.detail.items() if k in ("have", "need", "unit")},
                next_training_at=retry_at,
            )
        return ModelNotReady(
            "no failure model has been trained yet; the predict worker trains one in the background "
            f"(it looks every {self.config.trainer_check_seconds:g} s) as soon as run history is stored",
            missing="a trained failure model",
            next_training_at=now + check,
        )

    # --- pipelines ---
    async def pipeline_history(self, project_id: str, pipeline_id: str, days: float) -> pd.DataFrame:
        """The pipeline's runs of the last `days` days; 404 if it never ran, 409 if it ran only before.

        A pipeline whose runs all predate the training window gets the same 409 from every endpoint,
        whatever history the endpoint reads.
        """
        now = datetime.now(UTC)
        runs = await self.store.pipeline_runs(project_id, pipeline_id, now - timedelta(days=days))
        if not runs.empty:
            return runs
        latest = await self.store.latest_run(project_id, pipeline_id)
        if latest is None:
            raise PipelineNotFound(f"no runs of pipeline {pipeline_id!r} in project {project_id!r}")
        window = (
            max(days, float(self.config.training_days))
            if latest < now - timedelta(days=self.config.training_days)
            else days
        )
        raise InsufficientHistory(
            f"pipeline {pipeline_id!r} has no runs in the last {window:g} days (its latest run started "
            f"{latest:%Y-%m-%d %H:%M} UTC); predictions read recent history: send its recent runs",
            have=0,
            need=self.min_days,
            unit="days",
        )

    async def pipeline_entry(self, project_id: str, pipeline_id: str) -> _PipelineEntry:
        """Latest features and usual values of a pipeline, cached until it has a new run here (or 60 s)."""
        key = (project_id, pipeline_id)
        entry = self._pipelines.get(key)
        if entry is not None and time.monotonic() - entry.loaded_at < self.config.pipeline_cache_seconds:
            return entry
        runs = await self.pipeline_history(project_id, pipeline_id, self.feature_days)
        require_history(runs["started_at"], self.min_days, "a failure prediction")
        entry = _PipelineEntry(
            state=failure_domain.pipeline_state(runs),
            history_days=history_days(runs["started_at"]),
            as_of=runs["started_at"].max().to_pydatetime(),
            loaded_at=time.monotonic(),
        )
        if len(self._pipelines) >= MAX_CACHED_PIPELINES:
            self._pipelines.pop(next(iter(self._pipelines)))
        self._pipelines[key] = entry
        return entry

    def horizon(self, asked: int | None) -> int:
        return self.max_horizon_hours if asked is None else asked

    # --- failure ---
    async def failure(self, project_id: str, pipeline_id: str, horizon_hours: float) -> dict[str, Any]:
        entry = await self.pipeline_entry(project_id, pipeline_id)
        version, model = await self.current_model()
        if horizon_hours > model.max_horizon:
            raise InsufficientHistory(
                f"the current failure model answers horizons up to {model.max_horizon:g} h; "
                f"{horizon_hours:g} h needs a longer stored history to validate on",
                have=model.max_horizon,
                need=horizon_hours,
                unit="hours of horizon",
            )
        curve = entry.curve(version, model)
        probability = curve.probability(horizon_hours)
        factors = entry.factors_of(version, model, horizon_hours)
        actions = failure_domain.recommended_actions(factors)
        severity = failure_domain.severity_of(probability)
        description = failure_domain.describe(pipeline_id, probability, horizon_hours, factors)
        prevention = failure_domain.prevention_window_hours(curve, entry.state)
        explained_by = model.explaining_model(horizon_hours)
        metrics.PREDICTIONS.labels(kind="failure").inc()
        factor_bodies = [
            {
                "factor": f.factor,
                "description": failure_domain.factor_label(f.factor),
                "current_value": f.current_value,
                "usual_value": f.usual_value,
                "threshold": f.threshold,
                "beyond_threshold": f.beyond_threshold,
                "severity": f.severity,
                "contribution": f.contribution,
            }
            for f in factors
        ]
        probability = round(probability, 6)
        return {
            "success": True,
            "prediction": {
                "type": "failure",
                "confidence_score": probability,
                "severity": severity,
                "description": description,
                "contributing_factors": [
                    {key: body[key] for key in ("factor", "current_value", "threshold", "severity")}
                    for body in factor_bodies
                ],
                "recommended_actions": [code for code, _ in actions],
                "prevention_window_hours": prevention,
            },
            "pipeline_id": pipeline_id,
            "project_id": project_id,
            "horizon_hours": horizon_hours,
            "failure_probability": probability,
            "confidence_score": probability,
            "severity": severity,
            "description": description,
            "contributing_factors": factor_bodies,
            "recommended_actions": [sentence for _, sentence in actions],
            "prevention_window_hours": prevention,
            "as_of": entry.as_of,
            "history_days": round(entry.history_days, 2),
            "model": {
                "version": version,
                "trained_at": model.trained_at,
                "training_runs": model.training_runs,
                "explained_by_horizon_hours": explained_by.horizon_hours,
                "validation": {
                    key: explained_by.metrics.get(key)
                    for key in ("roc_auc", "pr_auc", "recall_at_5pct_fpr", "validation_rows")
                },
            },
        }

    async def model_versions(self, limit: int) -> list[dict[str, Any]]:
        return [
            {
                "version": v.id,
                "status": v.status,
                "started_at": v.started_at,
                "finished_at": v.finished_at,
                "training_seconds": None if v.training_seconds is None else round(v.training_seconds, 2),
                "training_cpu_seconds": None
                if v.training_cpu_seconds is None
                else round(v.training_cpu_seconds, 2),
                "horizons_hours": v.horizons,
                "training_window": {"start": v.window_start, "end": v.window_end},
                "training_runs": v.training_runs,
                "positives": v.positives,
                "data_hash": v.data_hash,
                "model_bytes": v.model_bytes,
                "validation": v.metrics,
                "detail": v.detail or None,
                "serving": self._model is not None and self._model[0] == v.id,
            }
            for v in await self.registry.versions(limit)
        ]

    # --- alerts ---
    async def evaluate_alerts(self, project_id: str, pipeline_id: str) -> MaintenanceAlert | None:
        """Open an episode (alert published once) when risk crosses the threshold; close on a clear drop."""
        horizon = float(self.config.alert_horizon_hours)
        try:
            entry = await self.pipeline_entry(project_id, pipeline_id)
            version, model = await self.current_model()
        except (NotAnswerable, PipelineNotFound):
            return None
        probability = entry.curve(version, model).probability(horizon)
        await self.outcomes.record(
            project_id, pipeline_id, horizon, entry.as_of, probability, self.config.alert_threshold, version
        )
        lock = self._alert_locks.setdefault((project_id, pipeline_id), asyncio.Lock())
        async with lock:
            return await self.episodes.apply_transition(
                project_id, pipeline_id, probability, model, entry.state, entry.as_of, horizon
            )

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
        bottleneck = None if exceed is None else round(float(exceed.max()), 4)
        body = {
            "success": True,
            "prediction": {
                "type": "resource_forecast",
                "resource_type": resource,
                "peak_prediction": [times[peak].to_pydatetime(), round(float(result.mean[peak]), 4)],
                "bottleneck_probability": bottleneck,
            },
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
            "probability_exceed_capacity": bottleneck,
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
        return await asyncio.to_thread(forecast_png, body, series, result)

    # --- costs ---
    async def costs(self, project_id: str) -> dict[str, Any]:
        """Outlook, anomalies over the whole stored history (both directions, per pipeline and for
        the project) and savings; the detection runs off the event loop."""
        now = datetime.now(UTC)
        daily = await self.store.daily_costs(project_id)
        if daily.empty:
            raise InsufficientHistory(
                f"cost predictions need {self.min_days:g} days of runs with cost_usd; none are stored",
                have=0,
                need=self.min_days,
                unit="days",
            )
        latest = daily["day"].max()
        if latest < pd.Timestamp(now) - pd.Timedelta(days=self.config.training_days):
            raise InsufficientHistory(
                f"project {project_id!r} has no runs with cost_usd in the last {self.config.training_days} "
                f"days (latest on {latest:%Y-%m-%d}); predictions read recent history: send recent runs",
                have=0,
                need=self.min_days,
                unit="days",
            )
        require_history(daily["day"], self.min_days, "a cost prediction")
        today = pd.Timestamp(now).normalize()
        daily = cost_domain.fill_days(daily[daily["day"] < today])  # today is not over yet
        if daily.empty:
            raise InsufficientHistory("no complete day of costs yet", have=0, need=1, unit="days")
        found, (current, monthly, (low, high)) = await asyncio.to_thread(
            lambda: (cost_domain.anomalies(daily), cost_domain.project_outlook(daily))
        )
        saving = cost_domain.savings(daily, found)
        metrics.PREDICTIONS.labels(kind="costs").inc()
        estimated = round(sum(s.amount_usd for s in saving), 2)
        return {
            "success": True,
            "prediction": {
                "type": "cost",
                "current_daily_cost": round(current, 2),
                "predicted_monthly_cost": round(monthly, 2),
                "estimated_savings": estimated,
            },
            "project_id": project_id,
            "currency": "USD",
            "current_daily_cost": round(current, 2),
            "as_of_day": daily["day"].max().date(),
            "history_days": int(daily["day"].nunique()),
            "predicted_monthly_cost": round(monthly, 2),
            "predicted_monthly_interval_80": [round(low, 2), round(high, 2)],
            "anomalies": [
                {
                    "scope": a.scope,
                    "pipeline_id": a.pipeline_id,
                    "date": a.day,
                    "kind": a.kind,
                    "cost_usd": a.cost_usd,
                    "expected_usd": a.expected_usd,
                    "score": a.score,
                }
                for a in found
            ],
            "estimated_savings": estimated,
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
            "success": True,
            "prediction": {"type": "maintenance_window", "confidence_score": chosen.confidence},
            "day_name": window_domain.DAY_NAMES_LONG[chosen.start_hour_of_week // 24],
            "time_window": chosen.time_window,
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


def service_of(runtime: Runtime) -> PredictService:
    """The process-wide service, shared by the worker and the routes (every service's factory)."""
    return runtime.component(COMPONENT, lambda: PredictService(runtime))
