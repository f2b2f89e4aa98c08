"""Every topic's contract, in one import. `CONTRACTS` maps a topic to its model."""

from shared.events.base import Contract, Event, Topic, utc_now
from shared.events.dead_letter import DeadLetter
from shared.events.documents import DocumentIngested
from shared.events.features import FeaturesWritten, FeatureValue
from shared.events.metrics import PipelineRunMetrics
from shared.events.outputs import MaintenanceAlert, PipelinesGenerated
from shared.events.schema import Drift, DriftDetected, ObservedColumn, SchemaObserved, SuggestedMapping

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
