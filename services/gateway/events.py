"""Turn REST calls into events: `POST /api/v1/events/<topic>` publishes the contract on its topic.

Acknowledged means the broker has the event (acks=all): a 202 is never lost afterwards.
"""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, status
from pydantic import BaseModel

from aietl.services.gateway.deps import ROLE_TOO_LOW, PrincipalDep, RuntimeDep, require_role
from aietl.services.gateway.roles import Role
from aietl.shared.bus import publish_event
from aietl.shared.errors import Unavailable
from aietl.shared.events import DocumentIngested, Event, FeaturesWritten, PipelineRunMetrics, SchemaObserved

router = APIRouter(prefix="/events", tags=["events"])

INBOUND: tuple[type[Event], ...] = (SchemaObserved, FeaturesWritten, PipelineRunMetrics, DocumentIngested)


class Accepted(BaseModel):
    event_id: UUID
    topic: str


def _publisher(model: type[Event]) -> Any:
    async def publish(event: Any, principal: PrincipalDep, runtime: RuntimeDep) -> Accepted:
        require_role(principal, event.project_id, Role.member)
        try:
            await publish_event(runtime.broker, event)
        except Exception as error:
            raise Unavailable(f"event bus unavailable: {type(error).__name__}") from error
        return Accepted(event_id=event.event_id, topic=model.topic)

    publish.__annotations__["event"] = model
    publish.__name__ = f"publish_{model.topic.replace('.', '_')}"
    publish.__doc__ = f"Publish one `{model.topic}` event ({model.__name__})."
    return publish


for _model in INBOUND:
    router.add_api_route(
        "/" + _model.topic.replace(".", "-"),
        _publisher(_model),
        methods=["POST"],
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses={
            **ROLE_TOO_LOW,
            404: {"description": "No such project, or not the caller's"},
            503: {"description": "The event bus does not answer"},
        },
    )
