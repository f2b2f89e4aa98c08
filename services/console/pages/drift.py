"""Drift: tables and baselines, a timeline of detections, decisions on open detections, policies, the
audit trail; per table, its versions and a side-by-side diff of any two."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse, Response

from aietl.services.console import charts
from aietl.services.console.client import ApiError
from aietl.services.console.pages.common import gather, notice
from aietl.services.console.rendering import render, required_time
from aietl.services.console.session import Console, ConsoleDep
from aietl.shared.events.schema import Severity, Strategy

router = APIRouter()
API = "/api/v1/advanced/schema-drift"
SEVERITIES: tuple[str, ...] = get_args(Severity)
STRATEGIES: tuple[str, ...] = get_args(Strategy)
OPEN = ("pending", "alerted", "blocked")


def worst(drifts: list[dict[str, Any]]) -> str:
    found = [d.get("severity", "low") for d in drifts]
    return max(found, key=SEVERITIES.index) if found else "low"


async def _page(console: Console, error: str | None = None) -> Response:
    project = console.project
    answers = await gather(
        baselines=console.api.get(f"{API}/baselines", project_id=project),
        detections=console.api.get(f"{API}/detections", project_id=project, limit=200),
        policies=console.api.get(f"{API}/policies", project_id=project),
        audit=console.api.get(f"{API}/audit", project_id=project, limit=50),
    )
    detections = answers["detections"].value or []
    marks = [
        charts.Mark(
            f"{d['connector_id']}/{d['table_name']}",
            required_time(d["created_at"]),
            d["status"],
            worst(d["drifts"]),
        )
        for d in reversed(detections)
    ]
    return render(
        console,
        "drift.html",
        page="drift",
        title="Schema drift",
        answers=answers,
        open_detections=[d for d in detections if d["status"] in OPEN],
        timeline=charts.timeline("Drift detections over time, per table", marks),
        worst=worst,
        severities=SEVERITIES,
        strategies=STRATEGIES,
        error=error,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if error else 200,
    )


@router.get("/drift")
async def drift(console: ConsoleDep) -> Response:
    notice(console)
    return await _page(console)


@router.post("/drift/decide")
async def decide(console: ConsoleDep) -> Response:
    """Accept the chosen drifts (a new baseline version) or reject the change (the source is blocked)."""
    form = await console.form()
    detection_id = await console.field("detection_id")
    decision = await console.field("decision")
    try:
        if decision == "accept":
            chosen = [int(i) for i in form.get("drift", []) if i.isdigit()]
            body: dict[str, Any] = {
                "strategy": "auto_adapt",
                "drift_indexes": chosen if "drift" in form else None,
            }
            code = "accepted"
        elif decision == "reject":
            body, code = {"strategy": "fail"}, "rejected"
        else:
            return await _page(console, "Choose accept or reject.")
        await console.api.post(f"{API}/detections/{detection_id}/adapt", body, project_id=console.project)
    except ApiError as refused:
        return await _page(console, refused.message)
    back = await console.field("back") or "/console/drift"
    target = back if back.startswith("/console/drift") else "/console/drift"
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}notice={code}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/drift/unblock")
async def unblock(console: ConsoleDep) -> Response:
    body = {
        "connector_id": await console.field("connector_id"),
        "table_name": await console.field("table_name"),
    }
    try:
        await console.api.post(f"{API}/unblock", body, project_id=console.project)
    except ApiError as refused:
        return await _page(console, refused.message)
    return RedirectResponse(
        console.url("/console/drift", notice="unblocked"), status_code=status.HTTP_303_SEE_OTHER
    )


@router.post("/drift/policy")
async def set_policy(console: ConsoleDep) -> Response:
    strategies = {}
    for severity in SEVERITIES:
        choice = await console.field(f"strategy_{severity}")
        if choice:
            strategies[severity] = choice
    body = {
        "connector_id": await console.field("connector_id") or "*",
        "table_name": await console.field("table_name") or "*",
        "strategies": strategies,
    }
    try:
        await console.api.put(f"{API}/policies", body, project_id=console.project)
    except ApiError as refused:
        return await _page(console, refused.message)
    return RedirectResponse(
        console.url("/console/drift", notice="policy"), status_code=status.HTTP_303_SEE_OTHER
    )


@router.get("/drift/table")
async def table(
    console: ConsoleDep,
    connector_id: str,
    table_name: str,
    older: int | None = None,
    newer: int | None = None,
) -> Response:
    notice(console)
    project = console.project
    history = await console.api.get(
        f"{API}/history", project_id=project, connector_id=connector_id, table_name=table_name
    )
    versions = [v["version"] for v in history["versions"]]
    if not versions:
        raise ApiError(404, f"table {connector_id}/{table_name} has no baseline in this project")
    newer = newer if newer in versions else versions[-1]
    older = older if older in versions else (versions[-2] if len(versions) > 1 else versions[-1])
    answers = await gather(
        diff=console.api.get(
            "/api/v1/ops/drift/diff",
            project_id=project,
            connector_id=connector_id,
            table_name=table_name,
            from_version=older,
            to_version=newer,
        ),
        detections=console.api.get(
            f"{API}/detections",
            project_id=project,
            connector_id=connector_id,
            table_name=table_name,
            limit=100,
        ),
        policy=console.api.get(
            f"{API}/policies/effective", project_id=project, connector_id=connector_id, table_name=table_name
        ),
    )
    return render(
        console,
        "drift_table.html",
        page="drift",
        title=f"Table {connector_id}/{table_name}",
        history=history,
        versions=versions,
        older=older,
        newer=newer,
        answers=answers,
        rows=side_by_side(answers["diff"].value) if answers["diff"].value else [],
        worst=worst,
        severities=SEVERITIES,
    )


def side_by_side(diff: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the diff: each column of the older version beside its counterpart in the newer one
    (a renamed column beside its new name), added columns at the end, with the drifts of the pair."""
    by_new: dict[str, list[dict[str, Any]]] = {}
    for drift in diff["drifts"]:
        by_new.setdefault(drift["column_name"], []).append(drift)
    renamed_to = {
        d["previous_name"]: d["column_name"] for d in diff["drifts"] if d["drift_type"] == "renamed_column"
    }
    new_columns = {c["name"]: c for c in diff["to_columns"]}
    rows, placed = [], set()
    for column in diff["from_columns"]:
        name = renamed_to.get(column["name"], column["name"])
        counterpart = new_columns.get(name)
        drifts = by_new.get(name if counterpart else column["name"], [])
        kind = (
            "renamed"
            if column["name"] in renamed_to
            else "removed"
            if counterpart is None
            else "changed"
            if drifts
            else "same"
        )
        rows.append({"old": column, "new": counterpart, "kind": kind, "drifts": drifts})
        if counterpart is not None:
            placed.add(name)
    for column in diff["to_columns"]:
        if column["name"] not in placed:
            rows.append(
                {"old": None, "new": column, "kind": "added", "drifts": by_new.get(column["name"], [])}
            )
    return rows
