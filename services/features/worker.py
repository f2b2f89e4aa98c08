"""features worker (being built: see its issue)."""

from services.runtime import Runtime
from shared.bus import ServiceRouter

GROUP = "features"


def create_router(runtime: Runtime) -> ServiceRouter:
    return ServiceRouter(runtime.broker, runtime.settings, GROUP)
