"""Predict worker: `metrics.ingested` in (batched into ClickHouse), `maintenance.alerts` out.

Storing is idempotent by run id (the table collapses duplicates), so redelivery needs no extra
bookkeeping; the handler returns only once the row is stored, so offsets never run ahead of data.
"""

from __future__ import annotations

from services.predict.service import get_service
from services.runtime import Runtime
from shared.bus import ServiceRouter
from shared.events import PipelineRunMetrics, Topic

GROUP = "predict"


def create_router(runtime: Runtime) -> ServiceRouter:
    router = ServiceRouter(runtime.broker, runtime.settings, GROUP)

    @router.consumes(Topic.METRICS_INGESTED)
    async def on_metrics_ingested(event: PipelineRunMetrics) -> None:
        service = get_service(runtime)
        await service.ingest([event])
        await service.evaluate_alerts(event.project_id, event.pipeline_id)

    return router
