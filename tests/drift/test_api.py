"""REST: detect, decide, baselines, audit, policies, the history page; project scoping and 422s."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from aietl.shared.events import Topic
from tests.support import read_topic

API = "/api/v1/advanced/schema-drift"
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "bigint", "nullable": False, "primary_key": True},
    {"name": "amount", "type": "numeric(10,2)"},
    {"name": "note", "type": "text"},
]


def _body(table: str, columns: list[dict], dialect: str = "postgres") -> dict:
    return {
        "connector_id": "pg_main",
        "table_name": table,
        "dialect": dialect,
        "current_schema": {"columns": columns},
    }


async def test_first_detect_sets_the_baseline_then_low_drift_is_adapted(
    client: httpx.AsyncClient, project_user
):
    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    first = await client.post(f"{API}/detect", json=_body(table, COLUMNS), headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["drifts_detected"] == 0 and first.json()["baseline_version"] == 1
    assert first.json()["baseline_created"] is True

    same = await client.post(f"{API}/detect", json=_body(table, list(reversed(COLUMNS))), headers=headers)
    assert same.json()["drifts_detected"] == 0 and same.json()["detection_id"] is None

    widened = [
        *COLUMNS[:1],
        {"name": "amount", "type": "numeric(14,2)"},
        *COLUMNS[2:],
        {"name": "tag", "type": "text"},
    ]
    second = (await client.post(f"{API}/detect", json=_body(table, widened), headers=headers)).json()
    assert second["drifts_detected"] == 2 and second["status"] == "adapted" and second["new_version"] == 2
    drift = next(d for d in second["drifts"] if d["drift_type"] == "type_change")
    assert drift["severity"] == "low" and drift["confidence_score"] == 1.0
    assert (
        drift["suggested_mapping"]["transformation_logic"] == 'CAST("amount" AS DECIMAL(14, 2)) AS "amount"'
    )

    history = (
        await client.get(f"{API}/history?connector_id=pg_main&table_name={table}", headers=headers)
    ).json()
    assert [v["version"] for v in history["versions"]] == [1, 2] and history["blocked"] is False
    baselines = (await client.get(f"{API}/baselines", headers=headers)).json()
    mine = next(b for b in baselines if b["table_name"] == table)
    assert mine["version"] == 2 and mine["columns"] == 4 and mine["blocked"] is False
    audit = (await client.get(f"{API}/audit?table_name={table}", headers=headers)).json()
    assert [a["action"] for a in audit] == ["detected", "baseline_created"]
    assert audit[0]["actor"].startswith("user:") and audit[0]["strategy"] == "auto_adapt"
    assert audit[0]["before_hash"] != audit[0]["after_hash"]
    page = await client.get(f"{API}/history/page?connector_id=pg_main&table_name={table}", headers=headers)
    assert page.status_code == 200 and "<svg" in page.text and "v2" in page.text


async def test_critical_drift_blocks_until_adapted(client: httpx.AsyncClient, project_user, runtime):
    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    await client.post(f"{API}/detect", json=_body(table, COLUMNS), headers=headers)
    dropped_key = [*COLUMNS[1:], {"name": "renamed_nothing", "type": "int"}]
    result = (await client.post(f"{API}/detect", json=_body(table, dropped_key), headers=headers)).json()
    assert result["status"] == "blocked" and result["strategy"] == "fail" and result["new_version"] is None
    again = (await client.post(f"{API}/detect", json=_body(table, dropped_key), headers=headers)).json()
    assert again["detection_id"] == result["detection_id"]  # the same open change is not recorded twice
    history = (
        await client.get(f"{API}/history?connector_id=pg_main&table_name={table}", headers=headers)
    ).json()
    assert history["blocked"] is True

    only_new = [i for i, d in enumerate(result["drifts"]) if d["drift_type"] == "new_column"]
    adapted = await client.post(
        f"{API}/detections/{result['detection_id']}/adapt",
        json={"strategy": "auto_adapt", "drift_indexes": only_new},
        headers=headers,
    )
    assert adapted.status_code == 200, adapted.text
    assert adapted.json()["status"] == "adapted" and adapted.json()["new_version"] == 2
    published = await read_topic(
        runtime.settings.resolved_kafka_servers,
        Topic.DRIFT_DETECTED,
        lambda value: table.encode() in value and b'"status":"adapted"' in value,
    )
    accepted = json.loads(published[0])
    assert accepted["new_version"] == 2 and [d["drift_type"] for d in accepted["drifts"]] == ["new_column"]
    assert accepted["event_id"] != result["detection_id"]  # a new fact: downstream must not drop it
    history = (
        await client.get(f"{API}/history?connector_id=pg_main&table_name={table}", headers=headers)
    ).json()
    assert history["blocked"] is False
    assert [c["name"] for c in history["versions"][-1]["columns"]] == [
        "id",
        "amount",
        "note",
        "renamed_nothing",
    ]
    twice = await client.post(f"{API}/detections/{result['detection_id']}/adapt", json={}, headers=headers)
    assert twice.status_code == 409


async def test_unblock_and_policies(client: httpx.AsyncClient, project_user):
    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    policy = {"connector_id": "pg_main", "table_name": table, "strategies": {"low": "fail"}}
    put = await client.put(f"{API}/policies", json=policy, headers=headers)
    assert put.status_code == 200 and put.json()["strategies"]["low"] == "fail"
    assert put.json()["strategies"]["critical"] == "fail" and put.json()["strategies"]["medium"] == "suggest"
    effective = await client.get(
        f"{API}/policies/effective?connector_id=pg_main&table_name={table}", headers=headers
    )
    assert effective.json()["strategies"]["low"] == "fail"
    await client.post(f"{API}/detect", json=_body(table, COLUMNS), headers=headers)
    blocked = (
        await client.post(
            f"{API}/detect", json=_body(table, [*COLUMNS, {"name": "x", "type": "int"}]), headers=headers
        )
    ).json()
    assert blocked["status"] == "blocked"
    unblock = {"connector_id": "pg_main", "table_name": table}
    assert (await client.post(f"{API}/unblock", json=unblock, headers=headers)).status_code == 204
    assert (await client.post(f"{API}/unblock", json=unblock, headers=headers)).status_code == 404
    actions = [
        a["action"] for a in (await client.get(f"{API}/audit?table_name={table}", headers=headers)).json()
    ]
    assert actions[:2] == ["unblocked", "detected"] and "policy_set" in actions
    listed = (
        await client.get(f"{API}/detections?table_name={table}&status=unblocked", headers=headers)
    ).json()
    assert [d["id"] for d in listed] == [blocked["detection_id"]]


async def test_bad_input_is_422_naming_the_field(client: httpx.AsyncClient, project_user):
    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    unknown = await client.post(  # an unknown type is an opaque name, never refused
        f"{API}/detect", json=_body(table, [{"name": "a", "type": "definitely_not_a_type"}]), headers=headers
    )
    assert unknown.status_code == 200 and unknown.json()["baseline_created"] is True
    duplicate = await client.post(
        f"{API}/detect",
        json=_body(table, [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}]),
        headers=headers,
    )
    assert duplicate.status_code == 422 and "duplicate column name" in duplicate.text
    assert duplicate.json()["errors"][0]["pointer"] == "/body/current_schema/columns/1/name"
    empty = await client.post(
        f"{API}/detect", json=_body(table, [{"name": " ", "type": "int"}]), headers=headers
    )
    assert empty.status_code == 422 and "name" in empty.json()["errors"][0]["pointer"].split("/")
    policy = await client.put(f"{API}/policies", json={"strategies": {"low": "explode"}}, headers=headers)
    assert policy.status_code == 422 and "strategies" in policy.text
    missing = await client.post(f"{API}/detections/{uuid.uuid4()}/adapt", json={}, headers=headers)
    assert missing.status_code == 404


async def test_a_malformed_project_id_is_422_even_for_the_administrator(client: httpx.AsyncClient, auth):
    """The administrator may name any project, so the name itself must be checked before an event is
    built from it (the OpenAPI fuzz test found a 500 here)."""
    body = _body(f"t_{uuid.uuid4().hex[:8]}", [{"name": "a", "type": "int"}])
    answer = await client.post(
        f"{API}/detect", params={"project_id": "bad project\x01"}, json=body, headers=auth
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["pointer"] == "/query/project_id"


async def test_other_projects_see_nothing(client: httpx.AsyncClient, project_user, auth):
    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    await client.post(f"{API}/detect", json=_body(table, COLUMNS), headers=headers)
    result = (
        await client.post(f"{API}/detect", json=_body(table, COLUMNS[:2]), headers=headers)
    ).json()  # a nullable column removed: high -> alert
    assert result["status"] == "alerted"
    other = (
        await client.get(
            f"{API}/history?project_id=default&connector_id=pg_main&table_name={table}", headers=auth
        )
    ).json()
    assert other["versions"] == []
    assert (
        await client.get(f"{API}/detections/{result['detection_id']}?project_id=default", headers=auth)
    ).status_code == 404
    foreign = await client.get(
        f"{API}/history?project_id=default&connector_id=pg_main&table_name={table}", headers=headers
    )
    assert foreign.status_code == 404


async def test_analyser_is_off_by_default(client: httpx.AsyncClient, project_user):
    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    await client.post(f"{API}/detect", json=_body(table, COLUMNS), headers=headers)
    result = (await client.post(f"{API}/detect", json=_body(table, COLUMNS[:2]), headers=headers)).json()
    response = await client.post(f"{API}/detections/{result['detection_id']}/analyse", headers=headers)
    assert response.status_code == 503 and "not configured" in response.text


async def test_a_change_seen_while_blocked_is_decided_again_after_unblock(
    client: httpx.AsyncClient, project_user
):
    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    await client.post(f"{API}/detect", json=_body(table, COLUMNS), headers=headers)
    critical = [c for c in COLUMNS if c["name"] != "id"]  # the key removed: critical -> fail
    blocked = (await client.post(f"{API}/detect", json=_body(table, critical), headers=headers)).json()
    assert blocked["status"] == "blocked"
    widened = [*COLUMNS, {"name": "tag", "type": "text"}]  # low on its own, blocked while blocked
    while_blocked = (await client.post(f"{API}/detect", json=_body(table, widened), headers=headers)).json()
    assert while_blocked["status"] == "blocked" and while_blocked["strategy"] == "fail"

    unblock = {"connector_id": "pg_main", "table_name": table}
    assert (await client.post(f"{API}/unblock", json=unblock, headers=headers)).status_code == 204
    history = await client.get(f"{API}/history?connector_id=pg_main&table_name={table}", headers=headers)
    assert history.json()["blocked"] is False
    again = (await client.post(f"{API}/detect", json=_body(table, widened), headers=headers)).json()
    assert again["detection_id"] != while_blocked["detection_id"]  # decided anew, by the policy
    assert again["status"] == "adapted" and again["new_version"] == 2
    closed = await client.get(f"{API}/detections?table_name={table}&status=unblocked", headers=headers)
    assert {d["id"] for d in closed.json()} == {blocked["detection_id"], while_blocked["detection_id"]}


SPEC_DEPLOYMENT_CHECK = {"connector_id": "test", "table_name": "test", "current_schema": {"columns": []}}
SPEC_BASELINE = {  # the specification's example table before the email column
    "connector_id": "uuid",
    "table_name": "customers",
    "current_schema": {"columns": [{"name": "id", "type": "int", "nullable": False}]},
}
SPEC_DETECT = {  # section 2 of the specification, as written
    "connector_id": "uuid",
    "table_name": "customers",
    "current_schema": {
        "columns": [
            {"name": "id", "type": "int", "nullable": False},
            {"name": "email", "type": "varchar", "nullable": True},
        ]
    },
}


async def test_the_specifications_example_works_as_written(client: httpx.AsyncClient, project_user):
    _, headers = project_user  # a fresh project: the specification's own names cannot collide
    check = await client.post(f"{API}/detect", json=SPEC_DEPLOYMENT_CHECK, headers=headers)
    assert check.status_code == 200, check.text
    assert check.json()["drifts_detected"] == 0 and check.json()["baseline_created"] is True
    again = await client.post(f"{API}/detect", json=SPEC_DEPLOYMENT_CHECK, headers=headers)
    assert again.json()["drifts_detected"] == 0 and again.json()["baseline_created"] is False
    baseline = await client.post(f"{API}/detect", json=SPEC_BASELINE, headers=headers)
    assert baseline.status_code == 200, baseline.text
    response = await client.post(f"{API}/detect", json=SPEC_DETECT, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["drifts_detected"] == 1
    assert body["status"] == "adapted" and body["new_version"] == 2  # the project's own fields beside
    drift = body["drifts"][0]
    assert drift["drift_type"] == "new_column" and drift["severity"] == "low"
    assert drift["column_name"] == "email" and 0.0 <= drift["confidence_score"] <= 1.0
    assert drift["suggested_mapping"]["auto_include"] is True
    assert drift["suggested_mapping"]["transformation_logic"] == 'CAST("email" AS VARCHAR) AS "email"'


async def test_decisions_are_measured(client: httpx.AsyncClient, project_user):
    """Drifts per type and severity, detections by status and decider, and time to resolution."""
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    adapted_before = sample("aietl_drift_detections_total", status="adapted", decided_by="policy")
    manual_before = sample("aietl_drift_resolution_seconds_count", strategy="auto_adapt")
    person_before = sample("aietl_drift_detections_total", status="adapted", decided_by="person")
    await client.post(f"{API}/detect", json=_body(table, COLUMNS), headers=headers)
    await client.post(
        f"{API}/detect", json=_body(table, [*COLUMNS, {"name": "a", "type": "text"}]), headers=headers
    )
    pending = (
        await client.post(
            f"{API}/detect",
            json=_body(
                table,
                [*COLUMNS, {"name": "a", "type": "text"}, {"name": "b", "type": "int", "nullable": False}],
            ),
            headers=headers,
        )
    ).json()
    assert pending["status"] == "pending"
    await client.post(f"{API}/detections/{pending['detection_id']}/adapt", json={}, headers=headers)
    assert sample("aietl_drift_detections_total", status="adapted", decided_by="policy") == adapted_before + 1
    assert sample("aietl_drift_detections_total", status="adapted", decided_by="person") == person_before + 1
    assert sample("aietl_drift_resolution_seconds_count", strategy="auto_adapt") == manual_before + 2
    assert (
        sample("aietl_drift_events_total", drift_type="new_column", severity="medium", strategy="suggest")
        >= 1
    )
