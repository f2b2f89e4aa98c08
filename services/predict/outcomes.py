"""Scoring predictions against what happened: accuracy, prevention success and savings realised.

The worker records each alerting prediction (at most one per pipeline, horizon and hour of its
latest run). Once `as_of + horizon` has passed and a later run of the pipeline is stored, the
trainer's loop scores it: predicted failure (probability >= alert threshold) or not, failed within
the window or not. Alert episodes are resolved the same way: `prevented` when the pipeline got
through the predicted window without a failure; then the typical cost of one of its failure
incidents is counted as saved. The gauges are recomputed from the SQL rows, so a restart loses
nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from aietl.services.predict.domain.alerts import OUTCOME_NAMES, error_rates, incident_cost, window_failed
from aietl.services.predict.tables import AlertEpisode, PredictionOutcome
from aietl.shared import metrics

if TYPE_CHECKING:
    from aietl.services.predict.service import PredictService

RESOLVE_BATCH = 2_000
UNKNOWN_AFTER = timedelta(days=7)  # no later run a week after the window: scored as unknown (failed = None)


class Outcomes:
    def __init__(self, service: PredictService) -> None:
        self.service = service
        self._recorded: dict[tuple[str, str, float], datetime] = {}

    async def record(
        self,
        project_id: str,
        pipeline_id: str,
        horizon_hours: float,
        as_of: datetime,
        probability: float,
        threshold: float,
        version: int,
    ) -> None:
        hour = as_of.replace(minute=0, second=0, microsecond=0)
        key = (project_id, pipeline_id, horizon_hours)
        if self._recorded.get(key) == hour:
            return
        try:
            async with self.service.runtime.database.transaction() as session:
                session.add(
                    PredictionOutcome(
                        project_id=project_id,
                        pipeline_id=pipeline_id,
                        horizon_hours=horizon_hours,
                        as_of=as_of,
                        as_of_hour=hour,
                        probability=probability,
                        threshold=threshold,
                        predicted_failure=probability >= threshold,
                        model_version=version,
                    )
                )
        except IntegrityError:
            pass  # this hour is recorded already (another process, or before a restart)
        self._recorded[key] = hour

    async def resolve(self, now: datetime) -> int:
        """Score every prediction and alert episode whose window has passed; returns how many."""
        database = self.service.runtime.database
        async with database.sessions() as session:
            predictions = list(
                await session.scalars(
                    select(PredictionOutcome)
                    .where(PredictionOutcome.resolved_at.is_(None))
                    .order_by(PredictionOutcome.as_of)
                    .limit(RESOLVE_BATCH)
                )
            )
            episodes = list(
                await session.scalars(
                    select(AlertEpisode)
                    .where(
                        AlertEpisode.resolved_at.is_(None),
                        AlertEpisode.published_at.is_not(None),
                        AlertEpisode.as_of.is_not(None),
                    )
                    .limit(RESOLVE_BATCH)
                )
            )
        due_predictions = [p for p in predictions if p.as_of + timedelta(hours=p.horizon_hours) <= now]
        due_episodes = [
            e
            for e in episodes
            if e.as_of is not None and e.as_of + timedelta(hours=e.horizon_hours or 0) <= now
        ]
        pipelines: dict[tuple[str, str], datetime] = defaultdict(lambda: now)
        due: list[PredictionOutcome | AlertEpisode] = [*due_predictions, *due_episodes]
        for item in due:
            assert item.as_of is not None  # the query selects episodes with `as_of` only
            key = (item.project_id, item.pipeline_id)
            pipelines[key] = min(pipelines[key], item.as_of)
        runs = {}
        for (project_id, pipeline_id), since in pipelines.items():
            history_start = min(since, now - timedelta(days=self.service.config.training_days))
            runs[(project_id, pipeline_id)] = await self.service.store.pipeline_runs(
                project_id, pipeline_id, history_start
            )
        resolved = 0
        async with database.transaction() as session:
            for prediction in due_predictions:
                frame = runs[(prediction.project_id, prediction.pipeline_id)]
                failed = _failed(frame, prediction.as_of, prediction.horizon_hours)
                if (
                    failed is None
                    and prediction.as_of + timedelta(hours=prediction.horizon_hours) + UNKNOWN_AFTER > now
                ):
                    continue
                stored = await session.get(PredictionOutcome, prediction.id)
                if stored is None:
                    continue
                stored.resolved_at, stored.failed = now, failed
                resolved += 1
                if failed is not None:
                    metrics.PREDICTION_OUTCOMES.labels(
                        outcome=OUTCOME_NAMES[(prediction.predicted_failure, failed)]
                    ).inc()
            for episode in due_episodes:
                frame = runs[(episode.project_id, episode.pipeline_id)]
                failed = _failed(frame, episode.as_of, episode.horizon_hours or 0.0)  # type: ignore[arg-type]
                if failed is None:
                    continue
                stored_episode = await session.get(AlertEpisode, episode.id)
                if stored_episode is None:
                    continue
                saving = 0.0 if failed else incident_cost(frame["status"], frame["cost_usd"])
                stored_episode.resolved_at, stored_episode.prevented = now, not failed
                stored_episode.saving_usd = round(saving, 4)
                resolved += 1
                metrics.ALERT_OUTCOMES.labels(outcome="failed" if failed else "prevented").inc()
                metrics.COST_SAVINGS_REALISED.inc(saving)
        await self.refresh_gauges(now)
        return resolved

    async def refresh_gauges(self, now: datetime) -> None:
        since = now - timedelta(days=self.service.config.outcome_window_days)
        async with self.service.runtime.database.sessions() as session:
            counted = await session.execute(
                select(PredictionOutcome.predicted_failure, PredictionOutcome.failed, func.count())
                .where(PredictionOutcome.resolved_at >= since, PredictionOutcome.failed.is_not(None))
                .group_by(PredictionOutcome.predicted_failure, PredictionOutcome.failed)
            )
            counts = {(bool(p), bool(f)): int(n) for p, f, n in counted}
            episodes = await session.execute(
                select(AlertEpisode.prevented, func.count())
                .where(AlertEpisode.resolved_at >= since)
                .group_by(AlertEpisode.prevented)
            )
            prevented = {bool(p): int(n) for p, n in episodes}
        fpr, fnr = error_rates(counts)
        if fpr is not None:
            metrics.PREDICTION_FALSE_POSITIVE_RATE.set(fpr)
        if fnr is not None:
            metrics.PREDICTION_FALSE_NEGATIVE_RATE.set(fnr)
        if prevented:
            metrics.PREVENTION_SUCCESS_RATE.set(prevented.get(True, 0) / sum(prevented.values()))


def _failed(runs: pd.DataFrame, as_of: datetime, horizon_hours: float) -> bool | None:
    if runs.empty:
        return None
    return window_failed(runs["started_at"], runs["status"] == "failed", as_of, horizon_hours)
