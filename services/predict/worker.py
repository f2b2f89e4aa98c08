"""Predict worker: `metrics.ingested` in (batched into ClickHouse), `maintenance.alerts` out, and the
trainer that keeps the failure model fresh in the background (`trainer.py`).

It consumes in batches (`aietl.shared.bus.BatchConsumer`): one ClickHouse insert per batch, then the
alert episodes of each pipeline the batch touched are re-evaluated once. Storing is idempotent by
run id (the table collapses duplicates), so redelivery needs no extra bookkeeping; the batch
returns only once its rows are stored, so offsets never run ahead of data.
"""

from __future__ import annotations

from collections.abc import Sequence

from aietl.services.predict.service import service_of
from aietl.services.predict.trainer import get_trainer
from aietl.services.runtime import Runtime
from aietl.shared.bus import ServiceRouter
from aietl.shared.events import Event, PipelineRunMetrics, Topic

GROUP = "predict"
MAX_BATCH = 1_000
BATCH_WAIT_MS = 20


def create_router(runtime: Runtime) -> ServiceRouter:
    get_trainer(runtime)  # trains and scores in the background while the worker consumes

    async def batch(events: Sequence[PipelineRunMetrics]) -> list[Event]:
        service = service_of(runtime)
        await service.ingest(events)
        for project_id, pipeline_id in dict.fromkeys((e.project_id, e.pipeline_id) for e in events):
            await service.evaluate_alerts(project_id, pipeline_id)
        return []  # alerts are published by their episode, once

    async def one(event: PipelineRunMetrics) -> list[Event]:
        return await batch([event])

    router = ServiceRouter(runtime.broker, runtime.settings, GROUP)
    router.consumes_batches(
        Topic.METRICS_INGESTED,
        parse=PipelineRunMetrics.model_validate_json,
        batch=batch,
        one=one,
        max_records=MAX_BATCH,
        wait_ms=BATCH_WAIT_MS,
    )
    return router
