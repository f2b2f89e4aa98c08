"""Overview: the five workers and the gateway, consumer lag, dead letters (with republish) and the
newest events per topic."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse, Response

from aietl.services.console import charts
from aietl.services.console.client import ApiError
from aietl.services.console.pages.common import FormError, gather, int_field, json_field, notice
from aietl.services.console.rendering import render
from aietl.services.console.session import Console, ConsoleDep

router = APIRouter()
OPS = "/api/v1/ops"


async def _page(
    console: Console, errors: dict[str, str] | None = None, drafts: dict[str, str] | None = None
) -> Response:
    everything = console.is_admin and console.request.query_params.get("scope") == "all"
    project = None if everything else console.project
    answers = await gather(
        processes=console.api.get(f"{OPS}/processes") if console.is_admin else _nothing(),
        letters=console.api.get(f"{OPS}/dead-letters", project_id=project, limit=20),
        events=console.api.get(f"{OPS}/events", project_id=project, limit=10),
    )
    processes = answers["processes"].value
    lag_chart = None
    if processes is not None:
        lag_chart = charts.horizontal_bars(
            "Consumer lag per topic and consumer group",
            "records",
            [(f"{item['topic']} · {item['group']}", item["lag"]) for item in processes["lag"]],
        )
    return render(
        console,
        "overview.html",
        page="overview",
        title="Overview",
        answers=answers,
        processes=processes,
        lag_chart=lag_chart,
        everything=everything,
        errors=errors or {},
        drafts=drafts or {},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if errors else 200,
    )


async def _nothing() -> None:
    return None


@router.get("/")
async def overview(console: ConsoleDep) -> Response:
    notice(console)
    return await _page(console)


def letter_key(dlq_topic: str, partition: Any, offset: Any) -> str:
    return f"{dlq_topic}/{partition}/{offset}"


@router.post("/dead-letters/republish")
async def republish(console: ConsoleDep) -> Response:
    dlq_topic = await console.field("dlq_topic")
    partition, offset = await console.field("partition"), await console.field("offset")
    key = letter_key(dlq_topic, partition, offset)
    text = await console.field("event")
    try:
        event = json_field("event", text)
        if not isinstance(event, dict):
            raise FormError("event: a JSON object is needed")
        position = f"{int_field('partition', partition)}/{int_field('offset', offset)}"
        where = f"{OPS}/dead-letters/{dlq_topic}/{position}/republish"
        await console.api.post(where, {"event": event})
    except (FormError, ApiError) as error:
        message = str(error) if isinstance(error, FormError) else error.message
        return await _page(console, errors={key: message}, drafts={key: text})
    return RedirectResponse(
        console.url("/console/", notice="republished"), status_code=status.HTTP_303_SEE_OTHER
    )
