"""Pipelines run on their schedule: the scheduler driven by a fake clock on SQLite (the newcomer's
setup) and two scheduler replicas on one PostgreSQL database firing each slot once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import select, update

from aietl.services.runtime import Runtime
from aietl.services.templates import schedules
from aietl.services.templates.config import TemplatesSettings
from aietl.services.templates.domain.schedule import Cron, Timing
from aietl.services.templates.scheduler import Scheduler
from aietl.services.templates.service import PipelineBusy, TemplatesService, run_lease
from aietl.services.templates.tables import PipelineInstance, PipelineRun, PipelineSchedule
from aietl.shared.events.base import utc_now
from aietl.shared.lease import Leases
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from tests.support import fresh_postgres_database

PROJECT = "default"
WAREHOUSE = "warehouse"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def replica(settings: Settings, database_url: str, warehouse_url: str) -> AsyncIterator[Runtime]:
    """One platform process on its own metadata database, with a `warehouse` connection."""
    process = Runtime(
        settings.model_copy(
            update={
                "database_url": database_url,
                "templates_connections": {WAREHOUSE: SecretStr(warehouse_url)},
            }
        ),
        client_id=f"aietl-scheduler-{uuid.uuid4().hex[:6]}",
    )
    await process.broker.connect()
    try:
        yield process
    finally:
        await process.broker.stop()
        await process.close()


async def warehouse_sql(runtime: Runtime, service: TemplatesService, statement: str) -> None:
    target = await service.connections.target(PROJECT, WAREHOUSE)
    async with target.engine.begin() as connection:  # type: ignore[attr-defined]
        await connection.exec_driver_sql(statement)


def service_of(runtime: Runtime, **config: Any) -> TemplatesService:
    return TemplatesService(runtime, TemplatesSettings(scheduler_enabled=False, **config))


async def scheduled_pipeline(
    service: TemplatesService, name: str, dialect: str, timing: Timing, source: str = "src"
) -> str:
    saved = await service.instantiate(
        PROJECT,
        pipeline_name=name,
        template_id=f"full_load_{dialect}",
        template_version=None,
        config={
            "source": {"name": source},
            "target": {"name": f"{name}_copy"},
            "columns": [{"name": "id"}, {"name": "v"}],
            "keys": ["id"],
        },
        connection=WAREHOUSE,
        schedule=timing,
    )
    return saved.instance.instance_id


async def schedule_row(runtime: Runtime, name: str) -> PipelineSchedule:
    async with runtime.database.sessions() as session:
        row = await schedules.schedule_of(session, PROJECT, name)
    assert row is not None
    return row


async def runs_of(runtime: Runtime, name: str) -> list[PipelineRun]:
    async with runtime.database.sessions() as session:
        query = select(PipelineRun).where(PipelineRun.pipeline_name == name).order_by(PipelineRun.started_at)
        return list((await session.scalars(query)).all())


@pytest.fixture
async def sqlite_setup(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Runtime, TemplatesService]]:
    metadata = f"sqlite+aiosqlite:///{tmp_path / 'metadata.db'}"
    await upgrade_async(metadata)
    async with replica(settings, metadata, f"sqlite+aiosqlite:///{tmp_path / 'warehouse.db'}") as process:
        service = service_of(process, schedule_grace_seconds=60, schedule_catch_up="skip")
        await warehouse_sql(process, service, "CREATE TABLE src (id INTEGER, v TEXT)")
        await warehouse_sql(process, service, "INSERT INTO src VALUES (1, 'a'), (2, 'b')")
        yield process, service


async def test_a_due_slot_runs_once_and_the_next_one_is_shown(
    sqlite_setup: tuple[Runtime, TemplatesService],
) -> None:
    runtime, service = sqlite_setup
    await scheduled_pipeline(service, "orders", "sqlite", Timing(Cron.parse("*/10 * * * *")))
    slot = (await schedule_row(runtime, "orders")).slot_at
    clock = FakeClock(slot - timedelta(seconds=1))
    scheduler = Scheduler(runtime, service, clock=clock)
    assert await scheduler.tick() == []  # not yet

    clock.now = slot + timedelta(seconds=2)
    [fired] = await scheduler.tick()
    assert (fired.trigger, fired.scheduled_for, fired.status) == ("schedule", slot, "success")
    assert await scheduler.tick() == []  # the slot ran; the next one waits
    row = await schedule_row(runtime, "orders")
    assert (row.slot_at, row.due_at, row.last_run_id) == (slot + timedelta(minutes=10),) * 2 + (fired.run_id,)
    [run] = await runs_of(runtime, "orders")
    assert (run.trigger, run.rows_written) == ("schedule", 2)


async def test_missed_slots_follow_the_catch_up_policy(
    sqlite_setup: tuple[Runtime, TemplatesService],
) -> None:
    runtime, service = sqlite_setup
    hourly = Cron.parse("0 * * * *")
    await scheduled_pipeline(service, "skipper", "sqlite", Timing(hourly, catch_up="skip"))
    await scheduled_pipeline(service, "catcher", "sqlite", Timing(hourly, catch_up="run_once"))
    slot = (await schedule_row(runtime, "skipper")).slot_at
    clock = FakeClock(slot + timedelta(hours=3, minutes=5))  # down for three hours; 5 minutes past grace
    fired = await Scheduler(runtime, service, clock=clock).tick()
    assert [(f.pipeline_name, f.scheduled_for) for f in fired] == [("catcher", slot + timedelta(hours=3))]
    assert await runs_of(runtime, "skipper") == []
    for name in ("skipper", "catcher"):
        assert (await schedule_row(runtime, name)).slot_at == slot + timedelta(hours=4)
    # back within the grace period of a slot, `skip` runs it
    clock.now = slot + timedelta(hours=4, seconds=30)
    fired = await Scheduler(runtime, service, clock=clock).tick()
    assert sorted(f.pipeline_name for f in fired) == ["catcher", "skipper"]


async def test_a_run_never_overlaps_the_previous_run_of_the_pipeline(
    sqlite_setup: tuple[Runtime, TemplatesService],
) -> None:
    runtime, service = sqlite_setup
    instance_id = await scheduled_pipeline(
        service, "busy", "sqlite", Timing(Cron.parse("0 * * * *"), catch_up="run_once")
    )
    slot = (await schedule_row(runtime, "busy")).slot_at
    scheduler = Scheduler(runtime, service, clock=FakeClock(slot + timedelta(seconds=1)))
    other_process = Leases(runtime.database, "another-replica", utc_now, ttl_seconds=60)
    assert await other_process.acquire(run_lease(PROJECT, "busy"))  # a run in progress elsewhere

    assert await scheduler.tick() == []
    assert (await schedule_row(runtime, "busy")).slot_at == slot  # still due: decided again later
    with pytest.raises(PipelineBusy):
        await service.run(PROJECT, instance_id, trigger="manual")

    await other_process.release(run_lease(PROJECT, "busy"))
    [fired] = await scheduler.tick()
    assert fired.scheduled_for == slot and len(await runs_of(runtime, "busy")) == 1


async def test_failed_scheduled_runs_retry_with_backoff(
    sqlite_setup: tuple[Runtime, TemplatesService],
) -> None:
    runtime, service = sqlite_setup
    await warehouse_sql(runtime, service, "CREATE TABLE flaky (id INTEGER, v TEXT)")
    timing = Timing(Cron.parse("0 * * * *"), max_retries=2, retry_backoff_seconds=60)
    await scheduled_pipeline(service, "flaky", "sqlite", timing, source="flaky")
    await warehouse_sql(runtime, service, "DROP TABLE flaky")  # every run fails until it is back
    slot = (await schedule_row(runtime, "flaky")).slot_at
    clock = FakeClock(slot + timedelta(seconds=1))
    scheduler = Scheduler(runtime, service, clock=clock)

    [first] = await scheduler.tick()
    assert first.status == "failed"
    row = await schedule_row(runtime, "flaky")
    assert (row.attempt, row.due_at) == (1, clock.now + timedelta(seconds=60))
    clock.now += timedelta(seconds=30)
    assert await scheduler.tick() == []  # backing off
    clock.now += timedelta(seconds=31)
    [second] = await scheduler.tick()
    assert second.status == "failed" and second.scheduled_for == slot
    assert (await schedule_row(runtime, "flaky")).due_at == clock.now + timedelta(seconds=120)  # doubled

    await warehouse_sql(runtime, service, "CREATE TABLE flaky (id INTEGER, v TEXT)")
    clock.now += timedelta(seconds=121)
    [third] = await scheduler.tick()
    assert third.status == "success"
    row = await schedule_row(runtime, "flaky")
    assert (row.attempt, row.slot_at, row.last_status) == (0, slot + timedelta(hours=1), "success")
    assert [run.status for run in await runs_of(runtime, "flaky")] == ["failed", "failed", "success"]


async def test_a_drift_request_runs_at_once_and_keeps_the_slot(
    sqlite_setup: tuple[Runtime, TemplatesService],
) -> None:
    runtime, service = sqlite_setup
    await scheduled_pipeline(service, "adapted", "sqlite", Timing(Cron.parse("0 0 1 1 *")))
    slot = (await schedule_row(runtime, "adapted")).slot_at
    now = utc_now()
    async with runtime.database.transaction() as session:
        assert await schedules.request_run(session, PROJECT, "adapted", now)
    [fired] = await Scheduler(runtime, service, clock=FakeClock(now + timedelta(seconds=1))).tick()
    assert (fired.trigger, fired.scheduled_for) == ("drift", None)
    row = await schedule_row(runtime, "adapted")
    assert (row.slot_at, row.due_at, row.requested_at) == (slot, slot, None)
    [run] = await runs_of(runtime, "adapted")
    assert run.trigger == "drift"


async def test_two_replicas_on_postgres_fire_each_slot_once(
    postgres_admin_url: str, settings: Settings
) -> None:
    with fresh_postgres_database(postgres_admin_url, "aietl_sched") as url:
        await upgrade_async(url)
        async with replica(settings, url, url) as first, replica(settings, url, url) as second:
            services = [service_of(first), service_of(second)]
            await warehouse_sql(first, services[0], "CREATE TABLE src (id BIGINT, v TEXT)")
            await warehouse_sql(first, services[0], "INSERT INTO src VALUES (1, 'a')")
            names = [f"p{index}" for index in range(3)]
            for name in names:
                await scheduled_pipeline(services[0], name, "postgres", Timing(Cron.parse("* * * * *")))
            slot = (await schedule_row(first, names[0])).slot_at
            clock = FakeClock(slot)
            schedulers = [
                Scheduler(runtime, svc, clock=clock)
                for runtime, svc in zip((first, second), services, strict=True)
            ]
            for minute in range(4):
                clock.now = slot + timedelta(minutes=minute, seconds=1)
                fired = [
                    f for results in await asyncio.gather(*(s.tick() for s in schedulers)) for f in results
                ]
                assert sorted(f.pipeline_name for f in fired) == names, f"minute {minute}: {fired}"
                assert {f.scheduled_for for f in fired} == {slot + timedelta(minutes=minute)}
            for name in names:
                runs = await runs_of(first, name)
                assert [run.trigger for run in runs] == ["schedule"] * 4


async def test_a_scheduled_run_the_scope_check_refuses_counts_as_a_failed_attempt(
    sqlite_setup: tuple[Runtime, TemplatesService],
) -> None:
    """Stored code that leaves its scope never runs on schedule, and the scheduler moves on (retry
    per policy) instead of trying the same refused run on every poll."""
    runtime, service = sqlite_setup
    await warehouse_sql(runtime, service, "CREATE TABLE bystander (id INTEGER)")
    timing = Timing(Cron.parse("0 * * * *"), max_retries=1, retry_backoff_seconds=60)
    instance_id = await scheduled_pipeline(service, "tampered", "sqlite", timing)
    async with runtime.database.transaction() as session:
        await session.execute(
            update(PipelineInstance)
            .where(PipelineInstance.instance_id == instance_id)
            .values(code='DELETE FROM "bystander";')
        )
    slot = (await schedule_row(runtime, "tampered")).slot_at
    clock = FakeClock(slot + timedelta(seconds=1))
    refused = REGISTRY.get_sample_value("aietl_pipeline_schedule_slots_total", {"outcome": "refused"}) or 0

    assert await Scheduler(runtime, service, clock=clock).tick() == []
    row = await schedule_row(runtime, "tampered")
    assert (row.attempt, row.due_at, row.last_status) == (1, clock.now + timedelta(seconds=60), None)
    assert (
        REGISTRY.get_sample_value("aietl_pipeline_schedule_slots_total", {"outcome": "refused"})
        == refused + 1
    )
    assert await runs_of(runtime, "tampered") == []  # nothing ran
