"""Vector sink routes: connector CRUD under /api/v1/connectors, ingest and search under
/api/v1/advanced/vectors. Secrets in connector configs are accepted, stored encrypted, never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, Field, ValidationError, model_validator

from aietl.services.gateway.deps import ProjectDep, ProjectReadDep, RuntimeDep, SessionDep
from aietl.services.vector_sink import store
from aietl.services.vector_sink.config import REDACTED, StoreType, parse_options, redacted, split_secrets
from aietl.services.vector_sink.connectors.base import CollectionNotFound, UnsupportedOperation
from aietl.services.vector_sink.domain.model import ConnectorConfigError, Document, FilterError, MetadataValue
from aietl.services.vector_sink.service import (
    ConnectorMisconfigured,
    IngestReport,
    UnknownConnector,
    VectorSinkService,
    failure_reason,
    service_of,
)
from aietl.services.vector_sink.tables import Connector
from aietl.shared.errors import Conflict, Invalid, NotFound
from aietl.shared.events.base import Name
from aietl.shared.outbound import OutboundRefused, PathRefused

router = APIRouter(tags=["vector-sink"])
MAX_DOCUMENTS = 1_000


class ConnectorIn(BaseModel):
    """`{name, type, config: {...}}`, or the specification's flat form (`{"type": "pinecone",
    "api_key": ..., "index_name": ...}`): options beside `type` are the config, and the name
    defaults to the index's name (else the type)."""

    name: Name
    type: StoreType | None = Field(default=None, description="Defaults to VECTOR_DB_TYPE.")
    config: dict[str, Any] = Field(default_factory=dict, description="Options of the store type; see docs")

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "config" in data:
            return data
        config = {key: value for key, value in data.items() if key not in ("name", "type")}
        name = data.get("name") or config.get("index_name") or config.get("collection") or data.get("type")
        return {"name": name or "default", "type": data.get("type"), "config": config}


class ConnectorPatch(BaseModel):
    name: Name | None = None
    config: dict[str, Any] | None = Field(
        default=None, description="Replaces the options; a secret left out or sent as *** is kept"
    )


class ConnectorOut(BaseModel):
    id: str
    project_id: str
    name: str
    type: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ConnectionCheck(BaseModel):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class DocumentIn(BaseModel):
    doc_id: Name
    operation: Literal["upsert", "delete"] = "upsert"
    text: str | None = None
    embedding: list[float] | None = Field(default=None, max_length=8_192)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    source: str | None = None
    author: str | None = None
    created_at: AwareDatetime | None = None


class IngestIn(BaseModel):
    connector_id: Name
    collection: Name
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS)


class SearchIn(BaseModel):
    connector_id: Name
    collection: Name
    query: str | None = Field(default=None, min_length=1, max_length=10_000)
    vector: list[float] | None = Field(default=None, min_length=1, max_length=8_192)
    top_k: int = Field(default=10, ge=1, le=1_000)
    filter: dict[str, Any] | None = None
    hybrid: bool = False


class HitOut(BaseModel):
    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]


class SearchOut(BaseModel):
    hits: list[HitOut]


def _out(row: Connector) -> ConnectorOut:
    return ConnectorOut(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        type=row.store_type,
        config=redacted(row.options, row.secret_names),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _seal(
    service: VectorSinkService, store_type: str, config: dict[str, Any], kept: dict[str, str]
) -> tuple[dict[str, Any], list[str], str | None]:
    try:
        options = parse_options(store_type, config)
    except ValidationError as error:
        raise Invalid.of_fields(error.errors(include_input=False), "body", "config") from None
    try:
        await service.check_destinations(options)
    except (OutboundRefused, PathRefused, ConnectorConfigError) as error:
        raise Invalid(f"config: {error}", at="/body/config") from None
    plain, secrets = split_secrets(options)
    secrets = {**kept, **secrets}
    return plain, sorted(secrets), service.secret_box.seal(secrets)


async def _connector(session: SessionDep, project_id: str, connector_id: str) -> Connector:
    row = await store.get_connector(session, project_id, connector_id)
    if row is None:
        raise NotFound(f"connector {connector_id!r} not found")
    return row


@router.post(
    "/connectors",
    response_model=ConnectorOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "A connector of this name exists"}},
)
async def create_connector(
    body: ConnectorIn, project_id: ProjectDep, session: SessionDep, runtime: RuntimeDep
) -> ConnectorOut:
    """Store a vector store connection for the project (secrets encrypted, never returned)."""
    if await store.get_connector(session, project_id, body.name) is not None:
        raise Conflict(f"name: connector {body.name!r} exists")
    store_type = body.type or runtime.settings.vector_db_type
    plain, names, sealed = await _seal(service_of(runtime), store_type, body.config, {})
    row = await store.add_connector(session, project_id, body.name, store_type, plain, names, sealed)
    await session.commit()
    return _out(row)


@router.get("/connectors", response_model=list[ConnectorOut])
async def list_connectors(project_id: ProjectDep, session: SessionDep) -> list[ConnectorOut]:
    return [_out(row) for row in await store.list_connectors(session, project_id)]


@router.get("/connectors/{connector_id}", response_model=ConnectorOut)
async def get_connector(connector_id: str, project_id: ProjectDep, session: SessionDep) -> ConnectorOut:
    return _out(await _connector(session, project_id, connector_id))


@router.patch(
    "/connectors/{connector_id}",
    response_model=ConnectorOut,
    responses={409: {"description": "A connector of this name exists"}},
)
async def update_connector(
    connector_id: str, body: ConnectorPatch, project_id: ProjectDep, session: SessionDep, runtime: RuntimeDep
) -> ConnectorOut:
    row = await _connector(session, project_id, connector_id)
    service = service_of(runtime)
    if body.name is not None and body.name != row.name:
        if await store.get_connector(session, project_id, body.name) is not None:
            raise Conflict(f"name: connector {body.name!r} exists")
        row.name = body.name
    if body.config is not None:
        config = {k: v for k, v in body.config.items() if v != REDACTED}
        kept = {k: v for k, v in service.secret_box.open(row.sealed_secrets).items() if k not in config}
        row.options, row.secret_names, row.sealed_secrets = await _seal(service, row.store_type, config, kept)
    store.touch(row)
    await session.commit()
    await service.forget(row.id)
    return _out(row)


@router.delete("/connectors/{connector_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_connector(
    connector_id: str, project_id: ProjectDep, session: SessionDep, runtime: RuntimeDep
) -> None:
    """Forget the connection and its document records; the vectors in the store are left alone."""
    row = await _connector(session, project_id, connector_id)
    await service_of(runtime).forget(row.id)
    await store.remove_connector(session, row)
    await session.commit()


@router.post("/connectors/{connector_id}/test", response_model=ConnectionCheck)
async def test_connection(
    connector_id: str, project_id: ProjectDep, session: SessionDep, runtime: RuntimeDep
) -> ConnectionCheck:
    """Open the connector and ping its store. A failure is the answer (`ok: false`), described in
    our words only: the remote side's reply is never shown."""
    row = await _connector(session, project_id, connector_id)
    try:
        seconds = await service_of(runtime).test_connection(row)
    except Exception as error:  # any failure of a remote store is the answer, not a server error
        return ConnectionCheck(ok=False, error=failure_reason(error))
    return ConnectionCheck(ok=True, latency_ms=round(seconds * 1000, 2))


@router.post("/advanced/vectors/ingest")
async def ingest(body: IngestIn, project_id: ProjectDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Chunk, embed and upsert documents now; unchanged ones are skipped, rejected ones reported."""
    documents = [Document(**item.model_dump()) for item in body.documents]
    try:
        report: IngestReport = await service_of(runtime).ingest(
            project_id, body.connector_id, body.collection, documents
        )
    except UnknownConnector as error:
        raise NotFound(f"connector_id: {error}") from None
    except ConnectorMisconfigured as error:
        raise Invalid(f"connector_id: {error}", at="/body/connector_id") from None
    return {
        "collection": body.collection,
        **report.__dict__,
        "rejected": [r.__dict__ for r in report.rejected],
    }


@router.post("/advanced/vectors/search", response_model=SearchOut)
async def search(body: SearchIn, project_id: ProjectReadDep, runtime: RuntimeDep) -> SearchOut:
    """Nearest chunks to `query` (text) or `vector`, with metadata `filter`; `hybrid` adds BM25."""
    if (body.query is None) == (body.vector is None):
        raise Invalid("give exactly one of query, vector", at="/body")
    try:
        hits = await service_of(runtime).search(
            project_id,
            body.connector_id,
            body.collection,
            query=body.query,
            vector=body.vector,
            top_k=body.top_k,
            filter=body.filter,
            hybrid=body.hybrid,
        )
    except UnknownConnector as error:
        raise NotFound(f"connector_id: {error}") from None
    except CollectionNotFound:
        raise NotFound(f"collection: {body.collection!r} not found") from None
    except FilterError as error:
        raise Invalid(f"filter: {error}", at="/body/filter") from None
    except UnsupportedOperation as error:
        raise Invalid(f"hybrid: {error}", at="/body/hybrid") from None
    except (ConnectorMisconfigured, ValueError) as error:
        raise Invalid(f"vector: {error}", at="/body/vector") from None
    return SearchOut(hits=[HitOut(**hit.__dict__) for hit in hits])
