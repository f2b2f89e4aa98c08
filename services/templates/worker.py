"""Templates worker: accepted schema drifts regenerate the pipelines that read the drifted table,
and the scheduler runs pipelines on their schedule (`AIETL_TEMPLATES_SCHEDULER_ENABLED`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.runtime import Runtime
from aietl.services.templates.scheduler import Scheduler
from aietl.services.templates.service import AdaptationOutcome, service_of
from aietl.shared.bus import ServiceRouter, publish_event
from aietl.shared.db import process_once
from aietl.shared.events import DriftDetected, Topic

GROUP = "templates"


def create_router(runtime: Runtime) -> ServiceRouter:
    router = ServiceRouter(runtime.broker, runtime.settings, GROUP)
    service = service_of(runtime)
    if service.config.scheduler_enabled:
        runtime.on_start(Scheduler(runtime, service).start)

    @router.consumes(Topic.DRIFT_DETECTED)
    async def on_drift_detected(event: DriftDetected) -> None:
        if event.status != "adapted":
            return

        async def work(session: AsyncSession) -> AdaptationOutcome:
            return await service.adapt(session, event)

        await service.ensure_builtins()
        outcome = await process_once(runtime.database, GROUP, event.event_id, work, AdaptationOutcome)
        for generated in outcome.generated if outcome else []:
            await publish_event(runtime.broker, generated)

    return router
