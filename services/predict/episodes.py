"""Alert episodes in SQL: one opens with its alert handed to the outbox in the same transaction,
keeps its peak probability while open, and closes when the risk clearly drops."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from aietl.services.predict.domain import failure as failure_domain
from aietl.services.predict.domain.alerts import transition
from aietl.services.predict.tables import AlertEpisode
from aietl.shared import metrics
from aietl.shared.events import MaintenanceAlert

if TYPE_CHECKING:
    from aietl.services.predict.service import PredictService

log = structlog.get_logger(__name__)


class AlertEpisodes:
    """At most one open `failure_risk` episode per pipeline; callers serialise a pipeline's calls."""

    def __init__(self, service: PredictService) -> None:
        self.service = service  # its config is read at each call, never copied

    async def apply_transition(
        self,
        project_id: str,
        pipeline_id: str,
        probability: float,
        model: failure_domain.FailureModel,
        state: failure_domain.PipelineState,
        as_of: datetime,
        horizon: float,
    ) -> MaintenanceAlert | None:
        threshold = self.service.config.alert_threshold
        async with self.service.runtime.database.transaction() as session:
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
                clear_margin=self.service.config.alert_clear_margin,
            )
            opened: MaintenanceAlert | None = None
            if step == "open":
                factors = model.factors(state.latest, state.usual, horizon)
                opened = MaintenanceAlert(
                    project_id=project_id,
                    pipeline_id=pipeline_id,
                    alert_type="failure_risk",
                    probability=round(probability, 4),
                    threshold=threshold,
                    severity=failure_domain.severity_of(probability),
                    description=failure_domain.describe(pipeline_id, probability, horizon, factors),
                    episode_started_at=datetime.now(UTC),
                )
                session.add(
                    AlertEpisode(
                        project_id=project_id,
                        pipeline_id=pipeline_id,
                        alert_type="failure_risk",
                        peak_probability=probability,
                        alert=opened.model_dump(mode="json"),
                        as_of=as_of,
                        horizon_hours=horizon,
                        published_at=datetime.now(UTC),  # handed to the outbox in this transaction
                    )
                )
                self.service.runtime.outbox.enqueue(session, [opened])
            elif step == "close" and episode is not None:
                episode.closed_at = datetime.now(UTC)
            elif episode is not None:
                episode.peak_probability = max(episode.peak_probability, probability)
        if opened is not None:
            metrics.MAINTENANCE_ALERTS.labels(alert_type=opened.alert_type, severity=opened.severity).inc()
            log.info("maintenance alert raised", pipeline_id=pipeline_id, probability=opened.probability)
        return opened
