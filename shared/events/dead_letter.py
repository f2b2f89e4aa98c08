"""The dead-letter contract: what failed, where it came from, why, and the original bytes."""

from __future__ import annotations

import base64
from typing import ClassVar

from pydantic import Field

from aietl.shared.events.base import Event


class DeadLetter(Event):
    topic: ClassVar[str] = "<topic>.dlq"

    original_topic: str
    original_key: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None
    original_value_b64: str = Field(description="The original message value, base64, byte for byte.")
    consumer_group: str | None = None
    error_type: str
    reason: str = Field(description="Why the event could not be processed; never contains secrets.")
    attempts: int = Field(ge=0)

    def original_value(self) -> bytes:
        return base64.b64decode(self.original_value_b64)

    def partition_key(self) -> str:
        return self.original_key or self.original_topic
