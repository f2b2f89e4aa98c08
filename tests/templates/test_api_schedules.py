"""REST: a pipeline's schedule and next run time, run triggers and run warnings."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from aietl.services.templates.domain.schedule import Cron
from aietl.shared.events.base import utc_now
from tests.templates.conftest import WAREHOUSE, warehouse_sql

BASE = "/api/v1/advanced/templates"
USAGE = (
    "aietl_template_usage_total",
    {"template": "incremental_postgres", "pattern": "incremental", "reason": "manual"},
)
GENERATION = ("aietl_pipeline_generation_seconds_count", {"reason": "manual"})
RUNS = (
    "aietl_pipeline_runs_total",
    {"status": "success", "trigger": "manual", "template": "incremental_postgres"},
)


def sample(metric: tuple[str, dict[str, str]]) -> float:
    return REGISTRY.get_sample_value(*metric) or 0.0


async def test_instances_show_their_schedule_and_next_run_time(
    warehouse_client: httpx.AsyncClient,
    warehouse_engine: AsyncEngine,
    project_user: tuple[str, dict[str, str]],
) -> None:
    project, headers = project_user
    schema = f"s_{project.replace('-', '_')}"
    await warehouse_sql(warehouse_engine, f"CREATE SCHEMA {schema}")
    await warehouse_sql(warehouse_engine, f"CREATE TABLE {schema}.orders (id BIGINT, seq BIGINT)")
    await warehouse_sql(warehouse_engine, f"INSERT INTO {schema}.orders VALUES (1, 1), (2, 2)")
    body = {
        "template_id": "incremental_postgres",
        "project_id": project,
        "pipeline_name": "orders",
        "connection": WAREHOUSE,
        "config": {
            "source": {"schema": schema, "name": "orders"},
            "target": {"schema": schema, "name": "orders_dw"},
            "columns": [{"name": "id"}, {"name": "seq"}],
            "keys": ["id"],
            "watermark_column": "seq",
            "watermark_type": "number",
        },
        "schedule": "0 6 1 1 *",  # yearly: the session's own scheduler must not run it
        "schedule_timezone": "Europe/Berlin",
        "catch_up": "skip",
    }
    bad_cron = await warehouse_client.post(
        f"{BASE}/instantiate", json={**body, "schedule": "0 25 * * *"}, headers=headers
    )
    assert bad_cron.status_code == 422 and bad_cron.json()["errors"][0]["pointer"] == "/schedule"
    bad_zone = await warehouse_client.post(
        f"{BASE}/instantiate", json={**body, "schedule_timezone": "Europe/Nowhere"}, headers=headers
    )
    assert bad_zone.status_code == 422 and bad_zone.json()["errors"][0]["pointer"] == "/schedule_timezone"

    usage, generation, runs = sample(USAGE), sample(GENERATION), sample(RUNS)
    created = await warehouse_client.post(f"{BASE}/instantiate", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert sample(USAGE) == usage + 1 and sample(GENERATION) > generation
    expected = Cron.parse("0 6 1 1 *", "Europe/Berlin").next_after(utc_now())
    assert datetime.fromisoformat(created.json()["next_run_at"]) == expected
    assert expected.astimezone(ZoneInfo("Europe/Berlin")).hour == 6
    instance_id = created.json()["instance_id"]
    shown = (await warehouse_client.get(f"{BASE}/instances/{instance_id}", headers=headers)).json()
    assert shown["schedule"]["cron"] == "0 6 1 1 *" and shown["schedule"]["catch_up"] == "skip"
    assert shown["schedule"]["max_retries"] == 0  # the service default
    assert datetime.fromisoformat(shown["next_run_at"]) == expected
    listed = (await warehouse_client.get(f"{BASE}/instances", headers=headers)).json()
    assert [i["next_run_at"] for i in listed] == [shown["next_run_at"]]

    without = {key: value for key, value in body.items() if not key.startswith(("schedule", "catch_up"))}
    kept = await warehouse_client.post(f"{BASE}/instantiate", json=without, headers=headers)
    assert kept.json()["next_run_at"] == shown["next_run_at"]  # no `schedule`: left as it was
    stopped = await warehouse_client.post(
        f"{BASE}/instantiate", json={**without, "schedule": None}, headers=headers
    )
    assert stopped.json()["schedule"] is None and stopped.json()["next_run_at"] is None

    run = (await warehouse_client.post(f"{BASE}/instances/{instance_id}/run", headers=headers)).json()
    assert (run["trigger"], run["status"], run["warnings"]) == ("manual", "success", [])
    assert sample(RUNS) == runs + 1
    assert (await warehouse_client.get(f"{BASE}/instances/nope", headers=headers)).status_code == 404


async def test_control_entries_validate_their_schedule_and_runs_report_warnings(
    warehouse_client: httpx.AsyncClient,
    warehouse_engine: AsyncEngine,
    project_user: tuple[str, dict[str, str]],
) -> None:
    project, headers = project_user
    schema = f"c_{project.replace('-', '_')}"
    await warehouse_sql(warehouse_engine, f"CREATE SCHEMA {schema}")
    await warehouse_sql(
        warehouse_engine, f"CREATE TABLE {schema}.changes (id BIGINT, v TEXT, seq BIGINT, op TEXT)"
    )
    await warehouse_sql(
        warehouse_engine, f"INSERT INTO {schema}.changes VALUES (1, 'a', 1, 'I'), (1, NULL, 2, 'D')"
    )
    entry = {
        "source_system": "crm",
        "source_object": f"{schema}.changes",
        "target_system": WAREHOUSE,
        "target_object": f"{schema}.current",
        "template_id": "cdc_postgres",
        "load_type": "cdc",
        "watermark_column": "seq",
        "keys": ["id"],
        "schedule": "every day",
        "config": {"columns": [{"name": "id"}, {"name": "v"}, {"name": "seq"}], "operation_column": "op"},
    }
    refused = await warehouse_client.post(f"{BASE}/control-table", json=entry, headers=headers)
    assert refused.status_code == 422 and refused.json()["errors"][0]["pointer"] == "/schedule"
    created = await warehouse_client.post(
        f"{BASE}/control-table", json={**entry, "schedule": "@yearly"}, headers=headers
    )
    assert created.status_code == 201, created.text
    generated = (
        await warehouse_client.post(f"{BASE}/generate", json={"dry_run": False}, headers=headers)
    ).json()
    [pipeline] = generated["pipelines"]
    shown = (
        await warehouse_client.get(f"{BASE}/instances/{pipeline['instance_id']}", headers=headers)
    ).json()
    assert shown["schedule"]["cron"] == "@yearly"

    run = (
        await warehouse_client.post(f"{BASE}/instances/{pipeline['instance_id']}/run", headers=headers)
    ).json()
    assert run["status"] == "success" and len(run["warnings"]) == 1
    assert "delete_values" in run["warnings"][0]  # 'D' is not 'DELETE': the delete was missed

    disabled = await warehouse_client.put(
        f"{BASE}/control-table/{created.json()['id']}",
        json={**entry, "schedule": "@yearly", "enabled": False},
        headers=headers,
    )
    assert disabled.status_code == 200
    shown = (
        await warehouse_client.get(f"{BASE}/instances/{pipeline['instance_id']}", headers=headers)
    ).json()
    assert shown["schedule"] is None  # a disabled entry's pipeline no longer runs on its own
