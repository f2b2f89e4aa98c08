"""predict worker (being built: see its issue)."""

from services.runtime import Runtime
from shared.bus import ServiceRouter

GROUP = "predict"


def create_router(runtime: Runtime) -> ServiceRouter:
    return ServiceRouter(runtime.broker, runtime.settings, GROUP)
