"""Contract of `features.written`: feature values with their event times."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from aietl.shared.events.base import Contract, Event, Name, Timestamp, Topic

FeatureScalar = bool | int | float | str | None
FeatureData = FeatureScalar | list[float] | list[int] | list[str]
StorageTarget = Literal["online", "offline", "both"]


class FeatureValue(Contract):
    feature_name: Name = Field(
        description="`name` or `name@vN`; the latest version when no version is given."
    )
    entity_id: Name
    value: FeatureData
    timestamp: Timestamp = Field(description="Event time of the value: what point-in-time joins use.")


class FeaturesWritten(Event):
    topic: ClassVar[str] = Topic.FEATURES_WRITTEN

    feature_view: Name | None = None
    values: list[FeatureValue] = Field(min_length=1, max_length=50_000)
    storage: StorageTarget = "both"

    def partition_key(self) -> str:
        return self.feature_view or self.values[0].entity_id
