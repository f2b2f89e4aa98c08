"""What the page modules share: fixed notices (never text from the query string), reading several API
answers at once while keeping each refusal beside its page section, and JSON typed in a form."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aietl.services.console.client import ApiError
from aietl.services.console.session import Console

NOTICES = {
    "republished": "The corrected event is queued and will be published to its topic.",
    "accepted": "The drift was accepted: the table has a new baseline version.",
    "rejected": "The drift was rejected: the source is blocked until you accept a change or unblock it.",
    "unblocked": "The source flows again.",
    "policy": "The policy was saved.",
    "entry": "The control table entry was saved.",
    "generated": "The pipelines were generated.",
}


def notice(console: Console) -> None:
    code = console.request.query_params.get("notice")
    if code in NOTICES:
        console.notices.append(NOTICES[code])


@dataclass
class Answer:
    """An API answer, or the reason it could not be had (shown in place of the section)."""

    value: Any = None
    error: str | None = None
    status_code: int = 200


async def gather(**calls: Awaitable[Any]) -> dict[str, Answer]:
    """Await every call concurrently; an API refusal becomes that answer's `error`."""
    names = list(calls)
    results = await asyncio.gather(*calls.values(), return_exceptions=True)
    answers = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, ApiError):
            answers[name] = Answer(error=result.message, status_code=result.status_code)
        elif isinstance(result, BaseException):
            raise result
        else:
            answers[name] = Answer(result)
    return answers


class FormError(ValueError):
    """A field of a console form cannot be sent as typed; the message names the field."""


def json_field(name: str, text: str, *, default: Any = None) -> Any:
    if not text.strip():
        return default
    try:
        return json.loads(text)
    except ValueError as error:
        raise FormError(f"{name}: not valid JSON ({error})") from None


def int_field(name: str, text: str, *, default: int | None = None) -> int | None:
    if not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        raise FormError(f"{name}: a whole number is needed") from None
