"""Features: the registry (search, versions, owners, TTL, freshness), lineage from source to feature
views as a graph, an online lookup for an entity and a point-in-time preview of a training set."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from aietl.services.console import charts
from aietl.services.console.client import ApiError
from aietl.services.console.pages.common import gather
from aietl.services.console.rendering import render
from aietl.services.console.session import Console, ConsoleDep

router = APIRouter()
API = "/api/v1/advanced/features"
MAX_GRAPH_FEATURES = 40
MAX_PREVIEW_ROWS = 50


def lineage(features: list[dict[str, Any]], views: list[dict[str, Any]]) -> charts.Markup:
    """Sources → pipelines → feature views → features → on-demand views that read them."""
    features = features[:MAX_GRAPH_FEATURES]
    layer: dict[str, dict[str, charts.Node]] = {
        k: {} for k in ("source", "pipeline", "view", "feature", "on_demand")
    }
    edges: list[tuple[str, str]] = []

    def node(kind: str, name: str) -> str:
        key = f"{kind}:{name}"
        layer[kind].setdefault(key, charts.Node(key, name, kind))
        return key

    view_by_name = {v["name"]: v for v in views}
    for feature in features:
        target = node("feature", feature["name"])
        view = view_by_name.get(feature["feature_view"], {})
        source = feature["source"] or view.get("source") or ""
        pipeline = feature["pipeline_id"] or view.get("pipeline_id")
        upstream = node("view", feature["feature_view"])
        edges.append((upstream, target))
        if pipeline:
            edges.append((node("pipeline", pipeline), upstream))
            if source:
                edges.append((node("source", source), node("pipeline", pipeline)))
        elif source:
            edges.append((node("source", source), upstream))
    names = {f["name"] for f in features}
    for view in views:
        if view["kind"] == "on_demand":
            readers = [i.split("@")[0] for i in view.get("inputs") or [] if i.split("@")[0] in names]
            for name in readers:
                edges.append((node("feature", name), node("on_demand", view["name"])))
    headings = {
        "source": "Sources",
        "pipeline": "Pipelines",
        "view": "Feature views",
        "feature": "Features",
        "on_demand": "On-demand views",
    }
    layers = [(headings[kind], list(nodes.values())) for kind, nodes in layer.items() if nodes]
    return charts.layered_graph(
        "Lineage from sources to feature views and features", layers, list(dict.fromkeys(edges))
    )


async def _page(
    console: Console, *, lookup: dict[str, Any] | None = None, preview: dict[str, Any] | None = None
) -> Response:
    project = console.project
    query = console.request.query_params.get("q", "").strip()
    answers = await gather(
        features=console.api.get(f"{API}/features", project_id=project),
        views=console.api.get(f"{API}/feature-views", project_id=project),
        freshness=console.api.get("/api/v1/ops/features/freshness", project_id=project),
    )
    features = (answers["features"].value or {}).get("features", [])
    views = (answers["views"].value or {}).get("feature_views", [])
    owners = {v["name"]: v.get("owner") or "" for v in views}
    fresh = {(f["name"], f["version"]): f for f in (answers["freshness"].value or {}).get("features", [])}
    shown = [
        f
        for f in features
        if not query
        or query.lower() in f["name"].lower()
        or query.lower() in (f["description"] or "").lower()
        or query.lower() in f["feature_view"].lower()
        or query.lower() in owners.get(f["feature_view"], "").lower()
    ]
    return render(
        console,
        "features.html",
        page="features",
        title="Feature store",
        answers=answers,
        features=shown,
        all_features=features,
        views=views,
        owners=owners,
        fresh=fresh,
        query=query,
        graph=lineage(shown, views) if shown else None,
        lookup=lookup or {},
        preview=preview or {},
    )


@router.get("/features")
async def features_page(console: ConsoleDep) -> Response:
    return await _page(console)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]


@router.post("/features/lookup")
async def lookup(console: ConsoleDep) -> Response:
    """Online values of features for entities, as the online store serves them now."""
    form = await console.form()
    names = form.get("feature", []) or _names(await console.field("features"))
    entities = _names(await console.field("entity_ids"))
    result: dict[str, Any] = {"names": names, "entities": ", ".join(entities)}
    try:
        answer = await console.api.post(
            f"{API}/get-online", {"feature_names": names, "entity_ids": entities}, project_id=console.project
        )
        result["vectors"] = answer["feature_vectors"]
    except ApiError as refused:
        result["error"] = refused.message
    return await _page(console, lookup=result)


@router.post("/features/preview")
async def preview(console: ConsoleDep) -> Response:
    """A point-in-time training set: for each (entity, time) row, the values as of that time."""
    form = await console.form()
    names = form.get("feature", []) or _names(await console.field("features"))
    text = await console.field("rows")
    result: dict[str, Any] = {"names": names, "rows_text": text}
    rows, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entity, _, moment = line.partition(",")
        try:
            at = datetime.fromisoformat(moment.strip().replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"line {number}: write entity_id, ISO time (e.g. user_1, 2026-01-31T12:00:00Z)")
            continue
        rows.append(
            {
                "entity_id": entity.strip(),
                "timestamp": (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat(),
            }
        )
    if len(rows) > MAX_PREVIEW_ROWS:
        problems.append(f"at most {MAX_PREVIEW_ROWS} rows in a preview")
    if problems:
        result["error"] = "; ".join(problems)
    else:
        try:
            answer = await console.api.post(
                f"{API}/historical", {"feature_names": names, "entity_rows": rows}, project_id=console.project
            )
            result["rows"] = answer["rows"]
        except ApiError as refused:
            result["error"] = refused.message
    return await _page(console, preview=result)


@router.get("/features/detail/{name}")
async def feature(console: ConsoleDep, name: str) -> Response:
    project = console.project
    described = await console.api.get(f"{API}/features/{name}", project_id=project)
    answers = await gather(
        views=console.api.get(f"{API}/feature-views", project_id=project),
        freshness=console.api.get("/api/v1/ops/features/freshness", project_id=project),
    )
    views = (answers["views"].value or {}).get("feature_views", [])
    fresh = {(f["name"], f["version"]): f for f in (answers["freshness"].value or {}).get("features", [])}
    return render(
        console,
        "feature.html",
        page="features",
        title=f"Feature {name}",
        feature=described,
        view=next((v for v in views if v["name"] == described["feature_view"]), None),
        fresh=fresh,
        graph=lineage([described], views),
    )
