"""The console in a real browser: the session's gateway served by uvicorn on a free port, Debian's
Chromium driven by Playwright (one browser for the session), and a project seeded over the REST API
with data in every area, named with hostile strings wherever the API allows any text."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from aietl.services.gateway.app import create_app
from aietl.services.predict.simulator import simulate
from aietl.services.runtime import Runtime
from aietl.shared.events import Topic
from tests.support import eventually, served

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_INSTALLED = CHROMIUM.exists()
HOSTILE_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = '"><script>alert(1)</script>'
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
PASSWORD = "console-password-1"


@pytest.fixture(scope="session")
async def console_url(runtime: Runtime) -> AsyncIterator[str]:
    """The gateway of the session's runtime, served over HTTP like `aietl up` serves it."""
    async with served(create_app(runtime, owns_runtime=False)) as url:
        yield url


def login_nonce(html: str) -> str:
    """The sign-in form's nonce (it must match the login cookie the form came with)."""
    found = re.search(r'name="login_nonce" value="([^"]+)"', html)
    assert found is not None, "no sign-in form"
    return found.group(1)


@dataclass(frozen=True)
class Member:
    project: str
    username: str
    headers: dict[str, str]


async def new_member(client: httpx.AsyncClient, auth: dict[str, str], prefix: str) -> Member:
    """A new project and a user who belongs only to it (password `PASSWORD`), signed in to the API."""
    suffix = uuid.uuid4().hex[:8]
    project, username = f"{prefix}-{suffix}", f"{prefix}-user-{suffix}"
    created = await client.post("/api/v1/projects", json={"id": project, "name": project}, headers=auth)
    assert created.status_code == 201, created.text
    user = {"username": username, "password": PASSWORD, "projects": [project]}
    created = await client.post("/api/v1/users", json=user, headers=auth)
    assert created.status_code == 201, created.text
    login = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return Member(project, username, {"Authorization": f"Bearer {login.json()['access_token']}"})


SCHEMA_BEFORE = [
    {"name": "id", "type": "bigint", "nullable": False, "primary_key": True},
    {"name": "amount", "type": "integer"},
    {"name": "customer_name", "type": "text"},
]
SCHEMA_AFTER = [
    SCHEMA_BEFORE[0],
    {"name": "amount", "type": "bigint"},  # widened
    {"name": "customer_full_name", "type": "text"},  # renamed
]


async def observe_a_change(
    client: httpx.AsyncClient, headers: dict[str, str], connector: str, table: str
) -> None:
    """A baseline (`SCHEMA_BEFORE`), then a renamed and a widened column: a detection waits for a decision."""
    for columns in (SCHEMA_BEFORE, SCHEMA_AFTER):
        body = {
            "connector_id": connector,
            "table_name": table,
            "dialect": "postgres",
            "current_schema": {"columns": columns},
        }
        response = await client.post("/api/v1/advanced/schema-drift/detect", json=body, headers=headers)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM_INSTALLED:
        pytest.fail("Chromium is missing: run deploy/local/start-services.sh (installs Debian's chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Seeded:
    """A project with something on every page, its member's credentials and API headers."""

    project: str
    username: str
    headers: dict[str, str]
    drift_table: str
    detection_id: str
    entry_id: str
    feature: str
    connector: str
    collection: str
    pipelines: list[str]
    dead_letter_marker: str
    extra: dict[str, Any] = field(default_factory=dict)


async def _ok(response: httpx.Response, *codes: int) -> Any:
    assert response.status_code in (codes or (200, 201, 202)), response.text
    return response.json() if response.content else None


@pytest.fixture(scope="session")
async def seeded(
    client: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime, warehouse_url: str
) -> Seeded:
    member = await new_member(client, auth, "console")
    project, username, headers = member.project, member.username, member.headers
    suffix = project.rsplit("-", 1)[1]
    params = {"project_id": project}

    # drift: a table named with markup, a baseline, then a change that waits for a decision
    drift = "/api/v1/advanced/schema-drift"
    table = f"orders {HOSTILE_IMG}"
    await observe_a_change(client, headers, "crm", table)
    [detection] = await _ok(
        await client.get(f"{drift}/detections", params={"table_name": table}, headers=headers)
    )
    assert detection["status"] == "pending", detection

    # features: a view with an owner, values written online and offline
    features = "/api/v1/advanced/features"
    feature = "purchases_7d"
    await _ok(
        await client.post(
            f"{features}/feature-views",
            params=params,
            json={
                "name": "customer_stats",
                "entity": "customer",
                "owner": "growth-team",
                "source": "crm.orders",
                "pipeline_id": "orders_daily",
                "ttl_seconds": 86_400,
                "description": f"Customer aggregates {HOSTILE_SCRIPT}",
                "features": [
                    {"name": feature, "feature_type": "int", "description": "purchases in the last 7 days"},
                    {"name": "avg_basket", "feature_type": "float", "description": HOSTILE_IMG},
                ],
            },
            headers=headers,
        ),
        201,
    )
    now = datetime.now(UTC)
    values = [
        {
            "feature_name": feature,
            "entity_id": "c-1",
            "value": 3,
            "timestamp": (now - timedelta(hours=3)).isoformat(),
        },
        {
            "feature_name": feature,
            "entity_id": "c-1",
            "value": 7,
            "timestamp": (now - timedelta(minutes=5)).isoformat(),
        },
        {
            "feature_name": "avg_basket",
            "entity_id": "c-1",
            "value": 42.5,
            "timestamp": (now - timedelta(minutes=5)).isoformat(),
        },
    ]
    await _ok(
        await client.post(f"{features}/write", params=params, json={"features": values}, headers=headers)
    )

    # templates: a control table entry (its source object carries markup), reading a table of the
    # warehouse connection the pipeline runs on (instantiate checks that the source exists)
    source_table = f"orders{HOSTILE_SCRIPT}"
    warehouse = await asyncpg.connect(warehouse_url.replace("+asyncpg", ""))
    try:
        quoted = '"' + source_table.replace('"', '""') + '"'
        await warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS public.{quoted} (id bigint PRIMARY KEY, amount numeric, seq bigint)"
        )
    finally:
        await warehouse.close()
    templates = "/api/v1/advanced/templates"
    entry = await _ok(
        await client.post(
            f"{templates}/control-table",
            params=params,
            json={
                "source_system": "crm",
                "source_object": f"public.{source_table}",
                "target_system": "warehouse",
                "target_object": f"dw_{suffix}.orders",
                "template_id": "incremental_postgres",
                "load_type": "incremental",
                "watermark_column": "seq",
                "keys": ["id"],
                "schedule": "0 0 1 1 *",
                "config": {
                    "columns": [{"name": "id"}, {"name": "amount"}, {"name": "seq"}],
                    "watermark_type": "number",
                },
            },
            headers=headers,
        ),
        201,
    )

    # predictive maintenance: twelve days of simulated hourly runs of three pipelines
    start = (now - timedelta(days=12)).replace(minute=0, second=0, microsecond=0)
    runs = simulate(project_id=project, pipelines=3, days=12, seed=11, start=start).runs.drop(
        columns=["project_id"]
    )
    payload = json.loads(runs.to_json(orient="records", date_format="iso"))
    await _ok(
        await client.post(
            "/api/v1/advanced/predict/runs", params=params, json={"runs": payload}, headers=headers
        ),
        202,
    )

    # vectors: a Milvus Lite connector and documents, one of them hostile
    connector = f"docs-{suffix}"
    await _ok(
        await client.post(
            "/api/v1/connectors",
            params=params,
            json={"name": connector, "type": "milvus", "config": {}},
            headers=headers,
        ),
        201,
    )
    documents = [
        {
            "doc_id": "refunds",
            "text": "Refunds are paid within 14 days of the return.",
            "metadata": {"lang": "en"},
        },
        {"doc_id": "shipping", "text": "Orders ship within two working days.", "metadata": {"lang": "en"}},
        {
            "doc_id": "hostile",
            "text": f"Returns policy {HOSTILE_SCRIPT} {HOSTILE_IMG}",
            "metadata": {"lang": "xx"},
        },
    ]
    await _ok(
        await client.post(
            "/api/v1/advanced/vectors/ingest",
            params=params,
            json={"connector_id": connector, "collection": "handbook", "documents": documents},
            headers=headers,
        )
    )
    # a metadata change re-writes the chunk under a new id: its vector is a cache hit (1 of 3 lookups)
    relabelled = {**documents[1], "metadata": {"lang": "en-GB"}}
    again = {"connector_id": connector, "collection": "handbook", "documents": [relabelled]}
    report = await _ok(
        await client.post("/api/v1/advanced/vectors/ingest", params=params, json=again, headers=headers)
    )
    assert (report["written_chunks"], report["cache_hits"]) == (1, 1), report

    # a dead letter of the project: an event that breaks its contract, named with markup
    marker = f"letter{suffix}"
    broken = {"project_id": project, "connector_id": "crm", "table_name": f"{marker}{HOSTILE_IMG}"}
    await runtime.broker.publish(json.dumps(broken).encode(), Topic.SCHEMA_OBSERVED, key=b"crm/broken")

    async def letter_arrived() -> bool:
        answer = await client.get(
            "/api/v1/ops/dead-letters", params={"topic": Topic.SCHEMA_OBSERVED, **params}, headers=headers
        )
        return any(marker in letter["original_value"] for letter in answer.json()["topics"][0]["letters"])

    await eventually(letter_arrived, timeout=60)
    return Seeded(
        project=project,
        username=username,
        headers=headers,
        drift_table=table,
        detection_id=detection["id"],
        entry_id=entry["id"],
        feature=feature,
        connector=connector,
        collection="handbook",
        pipelines=sorted(runs["pipeline_id"].unique().tolist()),
        dead_letter_marker=marker,
    )
