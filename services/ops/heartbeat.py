"""Every process records its heartbeat: per role it plays (worker names, `gateway`), whether it is
ready (the checks /ready makes), the consumer lag of that role's group, and when it was last seen.

In production the five workers and the gateway are separate processes (often on other machines),
so the gateway cannot call their /ready; they all share the metadata database, so each writes a
row there every `AIETL_HEARTBEAT_SECONDS` and the gateway reads the rows (`GET /api/v1/ops/processes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from aietl.services.operations import all_ok, component_states
from aietl.services.ops.tables import Heartbeat
from aietl.services.runtime import Runtime
from aietl.shared.bus import describe_error
from aietl.shared.events.base import utc_now

log = structlog.get_logger(__name__)
FORGET_AFTER = timedelta(days=1)
"""Rows of processes gone this long are deleted (replicas come and go; the table stays small)."""


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def record_heartbeats(runtime: Runtime) -> None:
    """Until cancelled: a heartbeat now, then every `heartbeat_seconds`, and at once when the process
    takes on a new role."""
    instance, started = instance_name(), utc_now()
    while True:
        runtime.roles_changed.clear()
        try:
            await beat(runtime, instance, started)
        except Exception as error:  # the database is away: the next beat tries again
            log.warning("heartbeat not recorded", error=describe_error(error))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.roles_changed.wait(), runtime.settings.heartbeat_seconds)


async def beat(runtime: Runtime, instance: str, started: datetime) -> None:
    """One heartbeat row per role of this process, upserted; old rows of vanished processes go."""
    if not runtime.roles:
        return
    checks = await component_states(runtime)
    lags = runtime.progress.lags if runtime.progress is not None else []
    now = utc_now()
    rows: list[dict[str, Any]] = [
        {
            "role": role,
            "instance": instance,
            "ready": all_ok(checks),
            "checks": checks,
            "lag": [
                {"topic": item.topic, "partition": item.partition, "lag": item.lag}
                for item in lags
                if item.group == role
            ],
            "started_at": started,
            "last_seen": now,
        }
        for role in runtime.roles
    ]
    dialect = postgresql if runtime.database.engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Heartbeat).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[Heartbeat.role, Heartbeat.instance],
        set_={
            name: statement.excluded[name] for name in ("ready", "checks", "lag", "started_at", "last_seen")
        },
    )
    async with runtime.database.transaction() as session:
        await session.execute(statement)
        await session.execute(delete(Heartbeat).where(Heartbeat.last_seen < now - FORGET_AFTER))
