"""Pipelines: templates and their versions, the control table (edit an entry, dry run, bulk generate),
generated SQL highlighted, runs with status, rows and duration, and which drift regenerated which pipeline."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse, Response

from aietl.services.console import highlight
from aietl.services.console.client import ApiError
from aietl.services.console.pages.common import FormError, gather, int_field, json_field, notice
from aietl.services.console.rendering import render
from aietl.services.console.session import Console, ConsoleDep
from aietl.services.templates.domain.model import Pattern

router = APIRouter()
API = "/api/v1/advanced/templates"
PATTERNS: tuple[str, ...] = get_args(Pattern)
MAX_INSTANCES_FOR_HISTORY = 50
SERVER_FIELDS = ("id", "project_id", "created_at", "updated_at")


async def _drift_history(console: Console, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Versions of the project's pipelines that a drift regenerated, newest first."""
    answers = await gather(
        **{
            i["instance_id"]: console.api.get(
                f"{API}/instances/{i['instance_id']}/versions", project_id=console.project
            )
            for i in instances[:MAX_INSTANCES_FOR_HISTORY]
        }
    )
    regenerated = [
        version
        for answer in answers.values()
        for version in answer.value or []
        if version.get("drift_event_id")
    ]
    return sorted(regenerated, key=lambda v: v["created_at"], reverse=True)


async def _page(
    console: Console, *, generated: dict[str, Any] | None = None, error: str | None = None
) -> Response:
    project = console.project
    answers = await gather(
        templates=console.api.get(f"{API}/list", project_id=project),
        entries=console.api.get(f"{API}/control-table", project_id=project),
        instances=console.api.get(f"{API}/instances", project_id=project),
    )
    templates: dict[str, list[dict[str, Any]]] = {}
    for row in answers["templates"].value or []:
        templates.setdefault(row["template_id"], []).append(row)
    instances = answers["instances"].value or []
    return render(
        console,
        "pipelines.html",
        page="pipelines",
        title="Pipelines",
        answers=answers,
        templates=templates,
        regenerated=await _drift_history(console, instances),
        generated=generated,
        highlight=highlight,
        error=error,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if error else 200,
    )


@router.get("/pipelines")
async def pipelines(console: ConsoleDep) -> Response:
    notice(console)
    return await _page(console)


@router.post("/pipelines/generate")
async def generate(console: ConsoleDep) -> Response:
    """`dry_run` renders every enabled entry and saves nothing; otherwise the pipelines are saved."""
    dry_run = await console.field("mode") != "save"
    try:
        answer = await console.api.post(f"{API}/generate", {"dry_run": dry_run}, project_id=console.project)
    except ApiError as refused:
        return await _page(console, error=refused.message)
    return await _page(console, generated=answer)


@router.get("/pipelines/templates/{template_id}")
async def template(console: ConsoleDep, template_id: str) -> Response:
    rows = [
        t
        for t in await console.api.get(f"{API}/list", project_id=console.project)
        if t["template_id"] == template_id
    ]
    if not rows:
        raise ApiError(404, f"template {template_id!r} not found")
    return render(
        console,
        "template.html",
        page="pipelines",
        title=f"Template {template_id}",
        versions=rows,
        highlight=highlight,
    )


async def _entry_page(console: Console, entry: dict[str, Any], error: str | None = None) -> Response:
    templates = await console.api.get(f"{API}/list", project_id=console.project)
    return render(
        console,
        "control_entry.html",
        page="pipelines",
        title=f"Control entry {entry['source_system']}.{entry['source_object']}",
        entry=entry,
        template_ids=sorted({t["template_id"] for t in templates}),
        patterns=PATTERNS,
        error=error,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if error else 200,
    )


@router.get("/pipelines/control/{entry_id}")
async def entry(console: ConsoleDep, entry_id: str) -> Response:
    return await _entry_page(
        console, await console.api.get(f"{API}/control-table/{entry_id}", project_id=console.project)
    )


@router.post("/pipelines/control/{entry_id}")
async def save_entry(console: ConsoleDep, entry_id: str) -> Response:
    """Replace the entry with the form's values (the API validates them; its refusal is shown)."""
    form = await console.form()

    def text(name: str) -> str:
        return form.get(name, [""])[-1]

    current = await console.api.get(f"{API}/control-table/{entry_id}", project_id=console.project)
    body = {name: value for name, value in current.items() if name not in SERVER_FIELDS}
    body.update(
        {
            name: text(name)
            for name in (
                "source_system",
                "source_object",
                "target_system",
                "target_object",
                "template_id",
                "load_type",
            )
        }
    )
    try:
        body.update(
            watermark_column=text("watermark_column") or None,
            keys=[k.strip() for k in text("keys").split(",") if k.strip()],
            enabled="enabled" in form,
            order=int_field("order", text("order"), default=0),
            schedule=text("schedule") or None,
            schedule_timezone=text("schedule_timezone") or "UTC",
            config=json_field("config", text("config"), default={}),
        )
        if not isinstance(body["config"], dict):
            raise FormError("config: a JSON object is needed")
        await console.api.put(f"{API}/control-table/{entry_id}", body, project_id=console.project)
    except (FormError, ApiError) as refused:
        message = str(refused) if isinstance(refused, FormError) else refused.message
        return await _entry_page(
            console, {**body, "id": entry_id, "config": text("config"), "keys": text("keys")}, message
        )
    return RedirectResponse(
        console.url("/console/pipelines", notice="entry"), status_code=status.HTTP_303_SEE_OTHER
    )


@router.get("/pipelines/instances/{instance_id}")
async def instance(console: ConsoleDep, instance_id: str) -> Response:
    project = console.project
    latest = await console.api.get(f"{API}/instances/{instance_id}", project_id=project)
    answers = await gather(
        versions=console.api.get(f"{API}/instances/{instance_id}/versions", project_id=project),
        runs=console.api.get(f"{API}/instances/{instance_id}/runs", project_id=project, limit=50),
    )
    return render(
        console,
        "instance.html",
        page="pipelines",
        title=f"Pipeline {latest['pipeline_name']}",
        instance=latest,
        answers=answers,
        highlight=highlight,
    )
