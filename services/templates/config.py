"""Templates service tuning, read from `AIETL_TEMPLATES_*` (connections live in shared settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from aietl.services.templates.domain.schedule import CatchUp, Policy


class TemplatesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIETL_TEMPLATES_", extra="ignore")

    scheduler_enabled: bool = True
    scheduler_poll_seconds: float = Field(default=5.0, gt=0, le=3_600)
    scheduler_concurrency: int = Field(default=4, ge=1, le=256)
    schedule_catch_up: CatchUp = "run_once"
    schedule_grace_seconds: float = Field(default=300.0, ge=0)
    schedule_max_retries: int = Field(default=0, ge=0, le=100)
    schedule_retry_backoff_seconds: float = Field(default=60.0, ge=0)
    schedule_max_backoff_seconds: float = Field(default=3_600.0, ge=0)
    lease_seconds: float = Field(default=60.0, ge=1)

    def schedule_policy(self) -> Policy:
        return Policy(
            catch_up=self.schedule_catch_up,
            grace_seconds=self.schedule_grace_seconds,
            max_retries=self.schedule_max_retries,
            retry_backoff_seconds=self.schedule_retry_backoff_seconds,
            max_backoff_seconds=self.schedule_max_backoff_seconds,
        )
