"""Pipeline schedules in SQL: set or clear a pipeline's schedule, ask for an out-of-schedule run,
find what is due, and load or store the scheduler's state (`domain.schedule.State`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.templates.domain.schedule import Cron, State, Timing, rescheduled
from aietl.services.templates.tables import PipelineSchedule


def timing_of(row: PipelineSchedule) -> Timing:
    return Timing(
        cron=Cron(row.cron, row.timezone),
        catch_up=row.catch_up,
        max_retries=row.max_retries,
        retry_backoff_seconds=row.retry_backoff_seconds,
    )


def state_of(row: PipelineSchedule) -> State:
    return State(
        slot_at=row.slot_at, attempt=row.attempt, retry_at=row.retry_at, requested_at=row.requested_at
    )


def store_state(row: PipelineSchedule, state: State, now: datetime) -> None:
    row.slot_at, row.attempt, row.retry_at = state.slot_at, state.attempt, state.retry_at
    row.requested_at, row.due_at, row.updated_at = state.requested_at, state.due_at, now


async def schedule_of(session: AsyncSession, project_id: str, pipeline_name: str) -> PipelineSchedule | None:
    return await session.get(PipelineSchedule, (project_id, pipeline_name))


async def schedules_of(session: AsyncSession, project_id: str) -> dict[str, PipelineSchedule]:
    """The project's schedules by instance id."""
    rows = await session.scalars(select(PipelineSchedule).where(PipelineSchedule.project_id == project_id))
    return {row.instance_id: row for row in rows}


async def set_schedule(
    session: AsyncSession,
    *,
    project_id: str,
    pipeline_name: str,
    instance_id: str,
    timing: Timing | None,
    now: datetime,
) -> PipelineSchedule | None:
    """Schedule the pipeline (None: stop scheduling it). A changed cron or time zone starts from
    the next slot after `now`; the same timing keeps the pending slot, retry and request."""
    row = await schedule_of(session, project_id, pipeline_name)
    if timing is None:
        if row is not None:
            await session.delete(row)
        return None
    if row is None:
        row = PipelineSchedule(project_id=project_id, pipeline_name=pipeline_name, attempt=0)
        session.add(row)
        previous, changed = None, True
    else:
        previous, changed = (
            state_of(row),
            (row.cron, row.timezone)
            != (
                timing.cron.expression,
                timing.cron.timezone,
            ),
        )
    row.instance_id = instance_id
    row.cron, row.timezone = timing.cron.expression, timing.cron.timezone
    row.catch_up, row.max_retries = timing.catch_up, timing.max_retries
    row.retry_backoff_seconds = timing.retry_backoff_seconds
    store_state(row, rescheduled(timing.cron, previous, changed, now), now)
    return row


async def request_run(session: AsyncSession, project_id: str, pipeline_name: str, now: datetime) -> bool:
    """Ask the scheduler to run a scheduled pipeline at once (after a drift adapted it)."""
    row = await schedule_of(session, project_id, pipeline_name)
    if row is None:
        return False
    store_state(row, State(row.slot_at, row.attempt, row.retry_at, requested_at=row.requested_at or now), now)
    return True


async def due(session: AsyncSession, now: datetime, limit: int) -> Sequence[PipelineSchedule]:
    """Schedules due at `now`, the longest-waiting first."""
    query = select(PipelineSchedule).where(PipelineSchedule.due_at <= now).order_by(PipelineSchedule.due_at)
    return (await session.scalars(query.limit(limit))).all()
