"""vector_sink worker (being built: see its issue)."""

from services.runtime import Runtime
from shared.bus import ServiceRouter

GROUP = "vector_sink"


def create_router(runtime: Runtime) -> ServiceRouter:
    return ServiceRouter(runtime.broker, runtime.settings, GROUP)
