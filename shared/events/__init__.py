"""Every topic's contract, in one import. `CONTRACTS` maps a topic to its model."""

from aietl.shared.events.base import Contract, Event, Topic, utc_now
from aietl.shared.events.dead_letter import DeadLetter
from aietl.shared.events.documents import DocumentIngested
from aietl.shared.events.features import FeaturesWritten, FeatureValue
from aietl.shared.events.metrics import PipelineRunMetrics
from aietl.shared.events.outputs import MaintenanceAlert, PipelinesGenerated
from aietl.shared.events.schema import Drift, DriftDetected, ObservedColumn, SchemaObserved, SuggestedMapping

CONTRACTS: dict[str, type[Event]] = {
    model.topic: model
    for model in (
        SchemaObserved,
        DriftDetected,
        FeaturesWritten,
        PipelineRunMetrics,
        DocumentIngested,
        PipelinesGenerated,
        MaintenanceAlert,
    )
}

__all__ = [
    "CONTRACTS",
    "Contract",
    "DeadLetter",
    "DocumentIngested",
    "Drift",
    "DriftDetected",
    "Event",
    "FeatureValue",
    "FeaturesWritten",
    "MaintenanceAlert",
    "ObservedColumn",
    "PipelineRunMetrics",
    "PipelinesGenerated",
    "SchemaObserved",
    "SuggestedMapping",
    "Topic",
    "utc_now",
]
