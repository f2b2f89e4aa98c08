"""REST under /api/v1/ops: heartbeats of every process, dead letters and their republication, recent
events, the drift diff and the console's summaries; each scoped to the caller's projects."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from aietl.services.runtime import Runtime
from aietl.shared.events import Topic
from tests.console.conftest import new_member, observe_a_change
from tests.support import eventually

OPS = "/api/v1/ops"
DRIFT = "/api/v1/advanced/schema-drift"


async def test_every_worker_and_the_gateway_report_a_heartbeat(
    client: httpx.AsyncClient, auth: dict[str, str], project_user: tuple[str, dict[str, str]]
) -> None:
    async def all_ready() -> dict[str, Any] | None:
        body = (await client.get(f"{OPS}/processes", headers=auth)).json()
        states = {role["role"]: role["status"] for role in body["roles"]}
        return body if set(states.values()) == {"ready"} else None

    body = await eventually(all_ready, timeout=60)
    assert body is not None
    assert {r["role"] for r in body["roles"]} >= {
        "gateway",
        "drift",
        "features",
        "templates",
        "predict",
        "vector_sink",
    }
    drift = next(p for p in body["processes"] if p["role"] == "drift")
    assert drift["checks"]["database"] == "ok" and drift["checks"]["kafka"] == "ok"
    assert {item["topic"] for item in drift["lag"]} <= {Topic.SCHEMA_OBSERVED}
    _, member = project_user
    refused = await client.get(f"{OPS}/processes", headers=member)
    assert refused.status_code == 403


async def _dead_letter(runtime: Runtime, project: str, marker: str) -> None:
    """A schema.observed event that breaks its contract (no columns): the drift worker dead-letters it."""
    broken = {"project_id": project, "connector_id": "crm", "table_name": marker}
    await runtime.broker.publish(json.dumps(broken).encode(), Topic.SCHEMA_OBSERVED, key=b"crm/x")


async def _letters(client: httpx.AsyncClient, headers: dict[str, str], marker: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"{OPS}/dead-letters", params={"topic": Topic.SCHEMA_OBSERVED}, headers=headers
    )
    assert response.status_code == 200, response.text
    [topic] = response.json()["topics"]
    return [letter for letter in topic["letters"] if marker in letter["original_value"]]


async def test_dead_letters_are_shown_to_their_project_and_republished_by_a_maintainer(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    project_user: tuple[str, dict[str, str]],
) -> None:
    project, member = project_user
    marker = f"orders_{uuid.uuid4().hex[:8]}"
    await _dead_letter(runtime, project, marker)
    [letter] = await eventually(lambda: _letters(client, member, marker), timeout=60)
    assert letter["project_id"] == project and letter["error_type"] == "ValidationError"
    assert "columns" in letter["reason"] and letter["original_is_json"] is True
    assert letter["republished_by"] is None

    outsider = (await new_member(client, auth, "outsider")).headers
    assert await _letters(client, outsider, marker) == []
    where = f"{OPS}/dead-letters/{letter['dlq_topic']}/{letter['partition']}/{letter['offset']}/republish"
    fixed = {**json.loads(letter["original_value"]), "columns": [{"name": "id", "type": "bigint"}]}
    assert (await client.post(where, json={"event": fixed}, headers=outsider)).status_code == 404
    # a plain member may look but not republish
    assert (await client.post(where, json={"event": fixed}, headers=member)).status_code == 403

    still_broken = await client.post(where, json={"event": {**fixed, "columns": "nope"}}, headers=auth)
    assert still_broken.status_code == 422
    assert still_broken.json()["errors"][0]["pointer"].startswith("/body/event/columns")
    moved = await client.post(where, json={"event": {**fixed, "project_id": "default"}}, headers=auth)
    assert moved.status_code == 422 and "project_id" in moved.json()["errors"][0]["pointer"].split("/")

    accepted = await client.post(where, json={"event": fixed}, headers=auth)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["topic"] == Topic.SCHEMA_OBSERVED
    again = await client.post(where, json={"event": fixed}, headers=auth)
    assert again.status_code == 409

    # the corrected event went out through the outbox: the drift worker set the table's baseline
    async def baseline() -> bool:
        history = await client.get(
            f"{DRIFT}/history", params={"connector_id": "crm", "table_name": marker}, headers=member
        )
        return bool(history.json()["versions"])

    await eventually(baseline, timeout=60)
    [shown] = await _letters(client, member, marker)
    assert shown["republished_by"] == "admin" and shown["republished_event_id"] == accepted.json()["event_id"]

    async def recent() -> list[dict[str, Any]]:
        response = await client.get(f"{OPS}/events", params={"topic": Topic.SCHEMA_OBSERVED}, headers=member)
        [topic] = response.json()["topics"]
        return [e for e in topic["events"] if e["event_id"] == accepted.json()["event_id"]]

    [event] = await eventually(recent, timeout=30)
    assert event["project_id"] == project and marker in event["value"]
    other = await client.get(f"{OPS}/events", params={"topic": Topic.SCHEMA_OBSERVED}, headers=outsider)
    assert all(e["project_id"] != project for e in other.json()["topics"][0]["events"])


async def test_a_letter_of_no_readable_project_is_for_administrators_to_place(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    project_user: tuple[str, dict[str, str]],
) -> None:
    project, member = project_user
    marker = f"garbled-{uuid.uuid4().hex[:8]}"
    await runtime.broker.publish(f"{{not json {marker}".encode(), Topic.SCHEMA_OBSERVED, key=b"x")
    [letter] = await eventually(lambda: _letters(client, auth, marker), timeout=60)
    assert letter["project_id"] == "unknown" and letter["original_is_json"] is False
    assert await _letters(client, member, marker) == []
    where = f"{OPS}/dead-letters/{letter['dlq_topic']}/{letter['partition']}/{letter['offset']}/republish"
    event = {
        "project_id": project,
        "connector_id": "crm",
        "table_name": marker,
        "columns": [{"name": "id", "type": "int"}],
    }
    assert (await client.post(where, json={"event": event}, headers=member)).status_code == 404
    placed = await client.post(where, json={"event": event}, headers=auth)
    assert placed.status_code == 202 and placed.json()["project_id"] == project


async def test_unknown_topics_and_other_projects_are_refused(
    client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]]
) -> None:
    _, member = project_user
    unknown = await client.get(f"{OPS}/dead-letters", params={"topic": "nope"}, headers=member)
    assert unknown.status_code == 422 and "topic" in unknown.json()["detail"]
    foreign = await client.get(f"{OPS}/events", params={"project_id": "default"}, headers=member)
    assert foreign.status_code == 404
    missing = await client.post(
        f"{OPS}/dead-letters/schema.observed.dlq/0/999999/republish", json={"event": {}}, headers=member
    )
    assert missing.status_code == 404
    assert (await client.get(f"{OPS}/events")).status_code == 401


async def test_drift_diff_names_renames_and_widening_with_severity(
    client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]]
) -> None:
    _, member = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    await observe_a_change(client, member, "pg", table)
    [pending] = (await client.get(f"{DRIFT}/detections", params={"table_name": table}, headers=member)).json()
    accepted = await client.post(
        f"{DRIFT}/detections/{pending['id']}/adapt", json={"strategy": "auto_adapt"}, headers=member
    )
    assert accepted.status_code == 200, accepted.text
    diff = await client.get(
        f"{OPS}/drift/diff",
        params={"connector_id": "pg", "table_name": table, "from_version": 1, "to_version": 2},
        headers=member,
    )
    assert diff.status_code == 200, diff.text
    drifts = {d["drift_type"]: d for d in diff.json()["drifts"]}
    assert drifts["renamed_column"]["previous_name"] == "customer_name"
    assert drifts["renamed_column"]["column_name"] == "customer_full_name"
    assert drifts["type_change"]["change_class"] == "widening" and drifts["type_change"]["severity"] == "low"
    assert [c["name"] for c in diff.json()["from_columns"]] == ["id", "amount", "customer_name"]
    missing = await client.get(
        f"{OPS}/drift/diff",
        params={"connector_id": "pg", "table_name": table, "from_version": 1, "to_version": 9},
        headers=member,
    )
    assert missing.status_code == 404
