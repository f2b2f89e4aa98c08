"""The specification's template examples (section 4 of advanced-features-guide.md), replayed as
written: the request bodies below are copied from it; only its placeholders are filled in."""

from __future__ import annotations

import copy

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.templates.conftest import WAREHOUSE, warehouse_sql

BASE = "/api/v1/advanced/templates"

# The Python example's template, whose schema and code the REST example elides as `{...}` / `...`.
SPEC_CONFIG_SCHEMA = {
    "type": "object",
    "required": ["source_table", "watermark_column"],
    "properties": {"source_table": {"type": "string"}, "watermark_column": {"type": "string"}},
}
SPEC_CODE_TEMPLATE = """
SELECT * FROM {{ source_table }}
WHERE {{ watermark_column }} > (
    SELECT MAX({{ watermark_column }}) FROM {{ target_table }}
)
    """

# POST /api/v1/advanced/templates/create
CREATE_TEMPLATE = {
    "name": "incremental_load",
    "display_name": "Incremental Load",
    "pattern": "incremental",
    "category": "full_pipeline",
    "config_schema": SPEC_CONFIG_SCHEMA,
    "code_template": SPEC_CODE_TEMPLATE,
}
# POST /api/v1/advanced/templates/instantiate
INSTANTIATE = {
    "template_id": "uuid",
    "config": {"source_table": "orders", "watermark_column": "updated_at"},
    "project_id": "uuid",
    "pipeline_name": "orders_incremental",
}
# service.create_control_table_entry(...) of the Python example, as a JSON body
CONTROL_ENTRY = {
    "source_system": "mysql_prod",
    "source_object": "orders",
    "target_system": "postgres_warehouse",
    "target_object": "fact_orders",
    "template_id": "str(template.id)",
    "project_id": "project_id",
    "load_type": "incremental",
    "watermark_column": "updated_at",
}
# service.generate_pipelines_from_control_table(project_id=project_id, dry_run=False)
GENERATE = {"project_id": "project_id", "dry_run": False}


def filled(body: dict, **values: str) -> dict:
    """The example with its placeholders (`uuid`, `project_id`, `str(template.id)`) filled in."""
    result = copy.deepcopy(body)
    result.update({key: value for key, value in values.items() if key in result})
    return result


async def test_the_specifications_template_examples_work_as_written(
    warehouse_client: httpx.AsyncClient,
    warehouse_engine: AsyncEngine,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
) -> None:
    project, headers = project_user  # a member instantiates, generates and runs
    client = warehouse_client

    created = await client.post(f"{BASE}/create", json=CREATE_TEMPLATE, headers=project_maintainer)
    assert created.status_code == 201, created.text
    template = created.json()
    assert (template["template_id"], template["name"], template["version"]) == (
        "incremental_load",
        "incremental_load",
        "1.0.0",
    )
    assert template["display_name"] == "Incremental Load" and template["code"] == SPEC_CODE_TEMPLATE
    assert template["dialect"] is None  # portable: rendered for the connection it is instantiated on

    listed = await client.get(f"{BASE}/list?pattern=incremental", headers=headers)
    assert listed.status_code == 200
    assert {t["pattern"] for t in listed.json()} == {"incremental"}
    assert "incremental_load" in {t["template_id"] for t in listed.json()}

    instantiated = await client.post(
        f"{BASE}/instantiate",
        json=filled(INSTANTIATE, template_id=template["template_id"], project_id=project),
        headers=headers,
    )
    assert instantiated.status_code == 201, instantiated.text
    instance = instantiated.json()
    assert instance["pipeline_name"] == "orders_incremental" and instance["config"] == INSTANTIATE["config"]
    # `target_table` is not in the config: a pipeline writes a table named after itself
    assert " ".join(instance["code"].split()) == (
        "SELECT * FROM orders WHERE updated_at > ( SELECT MAX(updated_at) FROM orders_incremental )"
    )

    entry = await client.post(
        f"{BASE}/control-table",
        json=filled(CONTROL_ENTRY, template_id=template["template_id"], project_id=project),
        headers=headers,
    )
    assert entry.status_code == 201, entry.text
    assert {key: entry.json()[key] for key in ("source_object", "target_system", "load_type")} == {
        "source_object": "orders",
        "target_system": WAREHOUSE,
        "load_type": "incremental",
    }

    generated = await client.post(
        f"{BASE}/generate", json=filled(GENERATE, project_id=project), headers=headers
    )
    assert generated.status_code == 200, generated.text
    [pipeline] = generated.json()["pipelines"]
    assert pipeline["errors"] == [] and pipeline["created"], pipeline
    assert pipeline["pipeline_name"] == "postgres_warehouse.fact_orders"
    assert "FROM orders" in pipeline["code"] and "FROM fact_orders" in pipeline["code"]
    version = (await client.get(f"{BASE}/instances/{pipeline['instance_id']}", headers=headers)).json()
    assert version["dialect"] == "postgres" and version["connection"] == WAREHOUSE  # from the connection

    # and the generated pipeline runs against the warehouse
    await warehouse_sql(
        warehouse_engine, "CREATE TABLE IF NOT EXISTS orders (id INT, updated_at TIMESTAMPTZ)"
    )
    await warehouse_sql(
        warehouse_engine, "CREATE TABLE IF NOT EXISTS fact_orders (id INT, updated_at TIMESTAMPTZ)"
    )
    run = await client.post(f"{BASE}/instances/{pipeline['instance_id']}/run", headers=headers)
    assert run.status_code == 200 and run.json()["status"] == "success", run.text


async def test_the_projects_own_field_names_keep_working(
    warehouse_client: httpx.AsyncClient, project_maintainer: dict[str, str]
) -> None:
    headers = project_maintainer  # template code is a maintainer's to write
    body = {
        "template_id": "incremental_load",
        "pattern": "incremental",
        "category": "loading",
        "dialect": "postgres",
        "config_schema": SPEC_CONFIG_SCHEMA,
        "code": SPEC_CODE_TEMPLATE,
    }
    created = await warehouse_client.post(f"{BASE}/create", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["dialect"] == "postgres" and created.json()["display_name"] is None
    both = await warehouse_client.post(
        f"{BASE}/create", json={**body, "code_template": "SELECT 1"}, headers=headers
    )
    assert both.status_code == 422  # one of `code` and `code_template`, not both
