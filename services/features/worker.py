"""Features worker: `features.written` in; values go to the online and/or offline store.

Writes are idempotent (upserts keyed by event time; the online store keeps the newer event time), and
`process_once` records the event so a redelivery after success does nothing at all. The registry read
and the SQL offline write go through the marker's own transaction: one connection per event (on
SQLite a second one would wait for the marker's write lock until the event is dead-lettered). An unknown
feature or a value of the wrong type can never succeed: PermanentError sends it to the DLQ.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.features.component import service_of
from aietl.services.features.domain import FeatureError
from aietl.services.features.service import ValueIn
from aietl.services.runtime import Runtime
from aietl.shared.bus import PermanentError, ServiceRouter
from aietl.shared.db import process_once
from aietl.shared.events import FeaturesWritten, Topic

GROUP = "features"


def create_router(runtime: Runtime) -> ServiceRouter:
    router = ServiceRouter(runtime.broker, runtime.settings, GROUP)

    @router.consumes(Topic.FEATURES_WRITTEN)
    async def on_features_written(event: FeaturesWritten) -> None:
        store = service_of(runtime)
        values = [ValueIn(v.feature_name, v.entity_id, v.value, v.timestamp) for v in event.values]

        async def work(session: AsyncSession) -> None:
            try:
                await store.write(event.project_id, values, event.storage, session)
            except FeatureError as error:
                raise PermanentError(str(error)) from error

        await process_once(runtime.database, GROUP, event.event_id, work, FeaturesWritten)

    return router
