"""One settings object for every process, read from the environment.

Names follow the seed (`DATABASE_URL`, `REDIS_URL`, ...); everything else is `AIETL_*`.
Unset URLs fall back to embedded defaults under `data_dir`, so `aietl up` needs no servers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIETL_", extra="ignore", populate_by_name=True)

    environment: Literal["embedded", "production", "test"] = "embedded"
    data_dir: Path = Path(".aietl")
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "console"

    # --- stores and bus (seed names) ---
    database_url: str | None = Field(
        default=None, validation_alias=_env("DATABASE_URL", "AIETL_DATABASE_URL")
    )
    redis_url: str | None = Field(default=None, validation_alias=_env("REDIS_URL", "AIETL_REDIS_URL"))
    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS", "AIETL_KAFKA_BOOTSTRAP_SERVERS")
    )
    clickhouse_host: str | None = Field(default=None, validation_alias=_env("CLICKHOUSE_HOST"))
    clickhouse_port: int = Field(default=8123, validation_alias=_env("CLICKHOUSE_PORT"))
    clickhouse_user: str = Field(default="default", validation_alias=_env("CLICKHOUSE_USER"))
    clickhouse_password: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("CLICKHOUSE_PASSWORD")
    )
    clickhouse_dsn: str | None = Field(
        default=None, validation_alias=_env("CLICKHOUSE_DSN", "AIETL_CLICKHOUSE_DSN")
    )
    milvus_host: str | None = Field(default=None, validation_alias=_env("MILVUS_HOST"))
    milvus_port: int = Field(default=19530, validation_alias=_env("MILVUS_PORT"))
    weaviate_url: str | None = Field(default=None, validation_alias=_env("WEAVIATE_URL"))
    pinecone_api_key: SecretStr | None = Field(default=None, validation_alias=_env("PINECONE_API_KEY"))

    # --- service tuning (seed names) ---
    feature_store_ttl_seconds: int = Field(
        default=86_400, ge=1, validation_alias=_env("FEATURE_STORE_TTL_SECONDS")
    )
    prediction_horizon_days: int = Field(default=7, ge=1, validation_alias=_env("PREDICTION_HORIZON_DAYS"))
    min_historical_days: int = Field(default=14, ge=1, validation_alias=_env("MIN_HISTORICAL_DAYS"))

    # --- bus ---
    kafka_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_session_timeout_ms: int = Field(default=6_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    kafka_fetch_max_wait_ms: int = Field(default=30, ge=0)
    kafka_max_message_bytes: int = Field(default=1_048_576, ge=1_024)
    handler_max_attempts: int = Field(default=3, ge=1)
    handler_retry_backoff_seconds: float = Field(default=0.2, ge=0)
    broker_port: int = Field(default=9092, ge=1, le=65535)

    # --- gateway and auth ---
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    jwt_secret: SecretStr | None = None
    jwt_ttl_seconds: int = Field(default=3_600, ge=60)
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    default_project: str = "default"
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=60, ge=1)
    max_request_bytes: int = Field(default=10 * 1_048_576, ge=1_024)
    metrics_port: int = Field(default=9100, ge=0, le=65535)

    # --- vector_sink ---
    vector_sink_secret_key: SecretStr | None = None  # Fernet key for connector secrets; else a key file

    # --- features ---
    # online: unset = SQLite file under data_dir; "redis" = REDIS_URL; or a redis:// / sqlite:/// URL.
    features_online_store: str | None = None
    # offline: unset or "sql" = the SQL database; "clickhouse" = the process's ClickHouse; or a SQL URL.
    features_offline_store: str | None = None

    # --- drift ---
    # Optional LLM analyser: an OpenAI-compatible base URL (e.g. http://localhost:11434/v1); off when unset.
    drift_llm_url: str | None = None
    drift_llm_model: str = "gpt-4o-mini"
    drift_llm_api_key: SecretStr | None = None

    # --- templates ---
    templates_connections: dict[str, SecretStr] = Field(default_factory=dict)  # target name -> SQL URL

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        """Accept plain `postgresql://` / `sqlite://` URLs as users write them; use the async drivers."""
        if url is None:
            return None
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    # plain properties, not cached: a copy with other fields (`model_copy(update=...)`) resolves anew
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'aietl.db').resolve()}"

    @property
    def resolved_kafka_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.broker_port}"

    @property
    def resolved_clickhouse_dsn(self) -> str:
        """A ClickHouse server when `CLICKHOUSE_HOST` is set, else chDB in-process under `data_dir`."""
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        if self.clickhouse_host:
            return f"clickhouse://{self.clickhouse_host}:{self.clickhouse_port}"
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        """True when no external Kafka is configured and `aietl up` must start tansu."""
        return self.kafka_bootstrap_servers is None

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
