"""Drift routes under /api/v1/advanced/schema-drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.drift import store
from services.gateway.deps import ProjectDep, SessionDep

router = APIRouter(prefix="/advanced/schema-drift", tags=["schema-drift"])


class SchemaVersionOut(BaseModel):
    version: int
    schema_hash: str
    columns: list[dict[str, Any]]
    observed_event_id: str
    created_at: datetime


class History(BaseModel):
    project_id: str
    connector_id: str
    table_name: str
    versions: list[SchemaVersionOut]


@router.get("/history", response_model=History)
async def history(
    project_id: ProjectDep,
    session: SessionDep,
    connector_id: Annotated[str, Query(min_length=1, max_length=255)],
    table_name: Annotated[str, Query(min_length=1, max_length=255)],
) -> History:
    """Every baseline version of a table, oldest first."""
    rows = await store.versions(session, project_id, connector_id, table_name)
    return History(
        project_id=project_id,
        connector_id=connector_id,
        table_name=table_name,
        versions=[
            SchemaVersionOut(
                version=r.version,
                schema_hash=r.schema_hash,
                columns=r.columns,
                observed_event_id=r.observed_event_id,
                created_at=r.created_at,
            )
            for r in rows
        ],
    )
