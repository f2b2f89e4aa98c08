"""The process-wide FeatureStore: stores chosen by settings, probes and closers registered once."""

from __future__ import annotations

from aietl.services.features.service import FeatureStore
from aietl.services.features.stores import offline_store_from_settings, online_store_from_settings
from aietl.services.runtime import Runtime


def service_of(runtime: Runtime) -> FeatureStore:
    def create() -> FeatureStore:
        online = online_store_from_settings(runtime)
        offline = offline_store_from_settings(runtime)
        runtime.readiness["features_online_store"] = online.ping
        runtime.on_shutdown(online.close)
        runtime.on_shutdown(offline.close)
        label = type(online).__name__.removesuffix("OnlineStore").lower()
        return FeatureStore(runtime.database, online, offline, online_label=label)

    return runtime.component("features.store", create)
