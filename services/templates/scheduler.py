"""The templates worker's scheduler: runs each pipeline whose schedule is due, once across replicas.

Every replica polls `templates_schedules` for due rows. For each, it takes the row's lease
(`schedule:<project>/<pipeline>` in `leases`), reads the row again (another replica may
have handled it meanwhile), lets `domain.schedule.decide` say what to do, runs the pipeline through
`TemplatesService.run` (whose own lease keeps runs of one pipeline from overlapping, manual ones
included), and stores the state `after_run` returns. A replica that dies mid-run lets its leases
expire; the slot is then decided again by whoever takes it (the catch-up policy applies).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from datetime import datetime

import structlog

from aietl.services.runtime import Runtime
from aietl.services.templates import schedules
from aietl.services.templates.config import TemplatesSettings
from aietl.services.templates.domain.model import InvalidConfig, TemplateError
from aietl.services.templates.domain.schedule import State, Trigger, after_run, decide
from aietl.services.templates.service import NotFound, PipelineBusy, TemplatesService, holder_id
from aietl.services.templates.tables import PipelineRun
from aietl.shared import metrics
from aietl.shared.events.base import utc_now
from aietl.shared.lease import Clock, LeaseHeld, Leases

log = structlog.get_logger(__name__)
DUE_BATCH = 500
"""Due schedules read per poll; the rest wait for the next poll."""
STOP_GRACE_SECONDS = 30.0
"""On shutdown, runs in progress get this long to finish before they are cancelled."""


def schedule_lease(project_id: str, pipeline_name: str) -> str:
    return f"schedule:{project_id}/{pipeline_name}"


@dataclass(frozen=True)
class Fired:
    """One scheduled run this replica started."""

    project_id: str
    pipeline_name: str
    trigger: Trigger
    scheduled_for: datetime | None
    run_id: str
    status: str


class Scheduler:
    def __init__(
        self,
        runtime: Runtime,
        service: TemplatesService,
        *,
        clock: Clock = utc_now,
        config: TemplatesSettings | None = None,
    ) -> None:
        self.runtime = runtime
        self.service = service
        self.config = config or service.config
        self.clock = clock
        self.leases = Leases(runtime.database, holder_id(), clock, self.config.lease_seconds)
        self._slots = asyncio.Semaphore(self.config.scheduler_concurrency)
        self._active: dict[tuple[str, str], asyncio.Task[Fired | None]] = {}
        self._loop: asyncio.Task[None] | None = None

    # --- one pass (tests drive this with a fake clock) -----------------------------------------

    async def tick(self) -> list[Fired]:
        """Handle every schedule due now and wait for the runs it starts."""
        started = await self._start_due()
        return [fired for fired in await asyncio.gather(*started) if fired is not None]

    async def _start_due(self) -> list[asyncio.Task[Fired | None]]:
        async with self.runtime.database.sessions() as session:
            due = await schedules.due(session, self.clock(), DUE_BATCH)
        started = []
        for row in due:
            key = (row.project_id, row.pipeline_name)
            if key not in self._active:
                self._active[key] = task = asyncio.create_task(self._handle(*key))
                started.append(task)
        return started

    async def _handle(self, project_id: str, pipeline_name: str) -> Fired | None:
        """One due pipeline, at most once at a time in this replica (`_active`)."""
        try:
            return await self._handle_leased(project_id, pipeline_name)
        finally:
            self._active.pop((project_id, pipeline_name), None)

    async def _handle_leased(self, project_id: str, pipeline_name: str) -> Fired | None:
        try:
            async with self._slots, self.leases.held(schedule_lease(project_id, pipeline_name)):
                return await self._decide_and_run(project_id, pipeline_name)
        except LeaseHeld:
            return None  # another replica is on it
        except Exception as error:  # one broken schedule must not stop the others
            log.exception("scheduled run failed to start", pipeline=pipeline_name, error=str(error))
            return None

    async def _decide_and_run(self, project_id: str, pipeline_name: str) -> Fired | None:
        now = self.clock()
        async with self.runtime.database.sessions() as session:
            row = await schedules.schedule_of(session, project_id, pipeline_name)
        if row is None or row.due_at > now:
            return None  # unscheduled, or handled by another replica since it was read
        timing, state, instance_id = schedules.timing_of(row), schedules.state_of(row), row.instance_id
        policy = timing.policy(self.service.config.schedule_policy())
        decision = decide(timing.cron, state, now, policy)
        if decision.missed:
            metrics.SCHEDULED_SLOTS.labels(outcome="missed").inc(decision.missed)
            log.info(
                "scheduled slots missed",
                pipeline=pipeline_name,
                missed=decision.missed,
                policy=policy.catch_up,
            )
        if decision.trigger is None:
            await self._store(project_id, pipeline_name, (row.cron, row.timezone), decision.state, now)
            return None
        run: PipelineRun | None
        try:
            run = await self.service.run(project_id, instance_id, trigger=decision.trigger)
        except PipelineBusy:
            metrics.SCHEDULED_SLOTS.labels(outcome="busy").inc()
            log.debug("scheduled run waits: the pipeline is running", pipeline=pipeline_name)
            return None  # state unchanged: decided again on a later tick
        except NotFound:
            log.warning("scheduled pipeline no longer exists; unscheduled", pipeline=pipeline_name)
            async with self.runtime.database.transaction() as session:
                await schedules.set_schedule(
                    session,
                    project_id=project_id,
                    pipeline_name=pipeline_name,
                    instance_id=instance_id,
                    timing=None,
                    now=now,
                )
            return None
        except (InvalidConfig, TemplateError) as refused:
            # its code no longer passes the scope check, or its connection is gone: nothing ran, and
            # the attempt counts as failed (retries and the next slot follow the policy)
            metrics.SCHEDULED_SLOTS.labels(outcome="refused").inc()
            log.warning("scheduled run refused", pipeline=pipeline_name, reason=str(refused))
            run = None
        ended = self.clock()
        succeeded = run is not None and run.status == "success"
        following = after_run(decision, state, succeeded, ended, policy)
        consumed = state.requested_at if decision.trigger == "drift" else None
        await self._store(
            project_id, pipeline_name, (row.cron, row.timezone), following, ended, run, consumed
        )
        if run is None:
            return None
        metrics.SCHEDULED_SLOTS.labels(outcome="ran").inc()
        return Fired(
            project_id, pipeline_name, decision.trigger, decision.scheduled_for, run.run_id, run.status
        )

    async def _store(
        self,
        project_id: str,
        pipeline_name: str,
        timing: tuple[str, str],
        state: State,
        now: datetime,
        run: PipelineRun | None = None,
        consumed: datetime | None = None,
    ) -> None:
        """Keep the new state, unless the schedule was changed or removed meanwhile (its owner's
        new timing wins). A run requested meanwhile stays requested (only the request this run
        carried out, `consumed`, is cleared); the last run is recorded either way."""
        async with self.runtime.database.transaction() as session:
            row = await schedules.schedule_of(session, project_id, pipeline_name)
            if row is None:
                return
            if (row.cron, row.timezone) == timing:
                request = row.requested_at if row.requested_at != consumed else None
                schedules.store_state(row, dataclasses.replace(state, requested_at=request), now)
            if run is not None:
                row.last_run_id, row.last_run_at, row.last_status = run.run_id, run.ended_at, run.status

    # --- the worker's loop ---------------------------------------------------------------------

    async def start(self) -> None:
        """Poll every `scheduler_poll_seconds` until the runtime shuts down."""
        self._loop = asyncio.create_task(self._poll())
        self.runtime.on_shutdown(self.stop)
        log.info("pipeline scheduler started", poll_seconds=self.config.scheduler_poll_seconds)

    async def _poll(self) -> None:
        while True:
            try:
                await self._start_due()
            except Exception as error:  # the database may be away for a moment; try again next poll
                log.warning("scheduler poll failed", error=str(error))
            await asyncio.sleep(self.config.scheduler_poll_seconds)

    async def stop(self) -> None:
        """Stop polling; runs in progress may finish within STOP_GRACE_SECONDS, then are cancelled
        (their transaction rolls back, their leases are released or expire)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        running = list(self._active.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
