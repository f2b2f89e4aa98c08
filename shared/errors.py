"""The one error family of the services: a use case raises what went wrong, the gateway answers it.

`NotFound` 404, `Conflict` 409, `Invalid` 422 and `Unavailable` 503 each become the one body shape
`ErrorBody` (FastAPI's own validation errors too), so that a client reads every refusal alike:
`detail` says it in a sentence, `errors` locates each problem by a JSON Pointer into the request
(`/body/columns/3/type`, `/query/project_id`; a pipeline configuration's problems point into it,
`/columns/1/source`), `context` carries machine-readable facts (how much more history is needed).
Pure: no web framework here, domain cores may raise these directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: `pointer` is a JSON Pointer (RFC 6901) to the offending
    value ('' is the whole request), `message` what is wrong with it."""

    pointer: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


class ErrorBody(BaseModel):
    """The body of every error answer of the API (every field always present)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    detail: str = Field(description="What went wrong, in a sentence")
    errors: list[Problem] = Field(default_factory=list, description="Each problem and where it is")
    context: dict[str, Any] = Field(default_factory=dict, description="Machine-readable facts, if any")


class ServiceError(Exception):
    """A refusal a caller can act on; `status` is the HTTP status the gateway answers with."""

    status: ClassVar[int] = 500

    def __init__(
        self, message: str, *, problems: Iterable[Problem] = (), context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)
        self.context: dict[str, Any] = dict(context or {})

    def body(self) -> ErrorBody:
        return ErrorBody(detail=str(self), errors=self.problems, context=self.context)


class NotFound(ServiceError):
    """No such thing (in the project in scope)."""

    status = 404


class Conflict(ServiceError):
    """The request contradicts the current state (already decided, already exists, not enough yet)."""

    status = 409


class Invalid(ServiceError):
    """A value of the request cannot be used: `at` locates it (the message is the problem's), or
    `problems` lists several."""

    status = 422

    def __init__(
        self,
        message: str,
        *,
        at: str = "",
        problems: Sequence[Problem] = (),
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, problems=problems or [Problem(at, message)], context=context)

    @classmethod
    def of_fields(cls, errors: Iterable[Mapping[str, Any]], *within: str | int) -> Invalid:
        """Pydantic's (and so FastAPI's) validation errors, each located by its JSON Pointer
        (`loc` ("body", "columns", 3) is `/body/columns/3`) under `within`, the detail naming the
        first ten (`body.columns.3: ...`); the input is not echoed (it may be a password)."""
        located = [((*within, *item.get("loc", ())), str(item.get("msg", ""))) for item in errors]
        message = "; ".join(".".join(map(str, loc)) + f": {text}" for loc, text in located[:10])
        problems = [Problem(pointer(*loc), text) for loc, text in located]
        return cls(message or "invalid request", problems=problems)


class Unavailable(ServiceError):
    """A backend this request needs does not answer or is not configured."""

    status = 503


def pointer(*parts: str | int) -> str:
    """The JSON Pointer of a location such as FastAPI's `loc` (`("body", "columns", 3)`)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)
