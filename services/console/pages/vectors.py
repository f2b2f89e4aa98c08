"""Vectors: connectors, collections with their ingestion status, and a search playground that shows
the retrieved chunks, their scores and metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from aietl.services.console.client import ApiError
from aietl.services.console.pages.common import FormError, gather, int_field, json_field
from aietl.services.console.rendering import render
from aietl.services.console.session import Console, ConsoleDep

router = APIRouter()


async def _page(console: Console, search: dict[str, Any] | None = None) -> Response:
    project = console.project
    answers = await gather(
        connectors=console.api.get("/api/v1/connectors", project_id=project),
        collections=console.api.get("/api/v1/ops/vectors/collections", project_id=project),
    )
    return render(
        console,
        "vectors.html",
        page="vectors",
        title="Vectors",
        answers=answers,
        search=search or {"top_k": "5"},
    )


@router.get("/vectors")
async def vectors(console: ConsoleDep) -> Response:
    return await _page(console)


@router.post("/vectors/search")
async def search(console: ConsoleDep) -> Response:
    form = await console.form()
    fields = {name: values[-1] for name, values in form.items() if name != "csrf_token"}
    result: dict[str, Any] = dict(fields)
    try:
        body = {
            "connector_id": fields.get("connector", ""),
            "collection": fields.get("collection", ""),
            "query": fields.get("query") or None,
            "top_k": int_field("top_k", fields.get("top_k", ""), default=10),
            "filter": json_field("filter", fields.get("filter", "")),
            "hybrid": "hybrid" in form,
        }
        result["hits"] = (
            await console.api.post("/api/v1/advanced/vectors/search", body, project_id=console.project)
        )["hits"]
    except FormError as error:
        result["error"] = str(error)
    except ApiError as refused:
        result["error"] = refused.message
    return await _page(console, result)
