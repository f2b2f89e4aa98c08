"""One settings object for every process, read from the environment.

Names follow the seed (`DATABASE_URL`, `REDIS_URL`, ...); everything else is `AIETL_*`.
Unset URLs fall back to embedded defaults under `data_dir`, so `aietl up` needs no servers.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    # the store type of a connector created without one
    vector_db_type: Literal["milvus", "weaviate", "pinecone"] = Field(
        default="milvus", validation_alias=_env("VECTOR_DB_TYPE", "AIETL_VECTOR_DB_TYPE")
    )

    # --- service tuning (seed names) ---
    feature_store_ttl_seconds: int = Field(
        default=86_400, ge=1, validation_alias=_env("FEATURE_STORE_TTL_SECONDS")
    )
    prediction_horizon_days: int = Field(default=7, ge=1, validation_alias=_env("PREDICTION_HORIZON_DAYS"))
    min_historical_days: int = Field(default=14, ge=1, validation_alias=_env("MIN_HISTORICAL_DAYS"))

    # --- bus ---
    kafka_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # unset: one less than the replication factor (3 -> 2: a write survives one broker down), at least 1
    kafka_min_insync_replicas: int | None = Field(default=None, ge=1)
    # unset: used when the broker grants a producer id (Apache Kafka does, tansu does not)
    kafka_idempotent_producer: bool | None = None
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL", "AIETL_KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", validation_alias=_env("KAFKA_SASL_MECHANISM", "AIETL_KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(
        default=None, validation_alias=_env("KAFKA_SASL_USERNAME", "AIETL_KAFKA_SASL_USERNAME")
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias=_env("KAFKA_SASL_PASSWORD", "AIETL_KAFKA_SASL_PASSWORD")
    )
    # CA bundle (PEM) that signed the brokers' certificates; unset: the system's trusted CAs
    kafka_ssl_ca_file: Path | None = Field(
        default=None, validation_alias=_env("KAFKA_SSL_CA_FILE", "AIETL_KAFKA_SSL_CA_FILE")
    )
    # a partition with lag whose consumer position has not moved for this long is reported stalled
    kafka_stall_seconds: float = Field(default=120.0, gt=0)
    kafka_session_timeout_ms: int = Field(default=6_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    kafka_fetch_max_wait_ms: int = Field(default=30, ge=0)
    kafka_max_message_bytes: int = Field(default=1_048_576, ge=1_024)
    handler_max_attempts: int = Field(default=3, ge=1)
    handler_retry_backoff_seconds: float = Field(default=0.2, ge=0)
    broker_port: int = Field(default=9092, ge=1, le=65535)
    # the outbox relay polls for events committed by other processes this often (its own wake it)
    outbox_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    # every process records its readiness and consumer lag this often (the console's overview reads it)
    heartbeat_seconds: float = Field(default=15.0, gt=0, le=3_600)

    # --- gateway and auth ---
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    # signing keys (services.gateway.security.KeyRing): a JSON list, the first signs, all verify;
    # or one key; unset (embedded only) = the key-ring file in data_dir
    jwt_secrets: list[SecretStr] | None = Field(default=None, min_length=1)
    jwt_secret: SecretStr | None = None
    jwt_ttl_seconds: int = Field(default=3_600, ge=60)
    # how long a gateway process trusts what it read of a user (rights, disabled, token version)
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    default_project: str = "default"
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=60, ge=1)
    # proxies whose X-Forwarded-For names the client (login throttling); comma-separated CIDRs
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(default_factory=list)
    max_request_bytes: int = Field(default=10 * 1_048_576, ge=1_024)
    metrics_port: int = Field(default=9100, ge=0, le=65535)

    # --- requests made for users (connectors, embedding endpoints, observed databases) ---
    # Comma-separated hosts, host:port, *.domain, IPs or CIDRs they may reach besides the hosts
    # configured above; see shared/outbound.py.
    outbound_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- vector_sink ---
    vector_sink_secret_key: SecretStr | None = None  # Fernet key for connector secrets; else a key file

    # --- features ---
    # online: unset = REDIS_URL when set, else the SQLite file under data_dir; "redis" = REDIS_URL;
    # "sqlite" = that file even with REDIS_URL set; or a redis:// / sqlite:/// URL.
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
    templates_render_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    templates_render_memory_mb: int = Field(default=512, ge=64)
    templates_render_workers: int = Field(default=2, ge=1, le=32)
    templates_run_timeout_seconds: float = Field(default=3_600.0, gt=0)
    # the sandboxed chDB run target (`clickhouse` connection); unset: offered except in production
    templates_embedded_clickhouse: bool | None = None
    templates_sandbox_memory_mb: int = Field(default=2_048, ge=64)

    @model_validator(mode="after")
    def _kafka_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        if self.resolved_kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError("AIETL_KAFKA_MIN_INSYNC_REPLICAS exceeds AIETL_KAFKA_REPLICATION_FACTOR")
        if self.kafka_ssl_ca_file is not None and not self.kafka_ssl_ca_file.is_file():
            raise ValueError(f"KAFKA_SSL_CA_FILE {self.kafka_ssl_ca_file} is not a file")
        return self

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

    @field_validator("outbound_allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

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
    def resolved_kafka_min_insync_replicas(self) -> int:
        if self.kafka_min_insync_replicas is not None:
            return self.kafka_min_insync_replicas
        return max(1, self.kafka_replication_factor - 1)

    @property
    def resolved_features_online_store(self) -> str:
        """The online feature store's URL: what `AIETL_FEATURES_ONLINE_STORE` says, else Redis when
        `REDIS_URL` is set (as the README promises), else the SQLite file under `data_dir`."""
        choice = self.features_online_store or ("redis" if self.redis_url else "sqlite")
        if choice == "redis":
            if not self.redis_url:
                raise ValueError("AIETL_FEATURES_ONLINE_STORE=redis needs REDIS_URL")
            return self.redis_url
        if choice == "sqlite":
            return f"sqlite:///{(self.data_dir / 'features_online.db').resolve()}"
        return choice

    @property
    def embedded_broker(self) -> bool:
        """True when no external Kafka is configured and `aietl up` must start tansu."""
        return self.kafka_bootstrap_servers is None

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
