"""Settings read the seed's environment names and fall back to embedded defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aietl.shared.settings import Settings


def test_seed_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/aietl")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("CLICKHOUSE_HOST", "ch")
    monkeypatch.setenv("MILVUS_HOST", "milvus")
    monkeypatch.setenv("MILVUS_PORT", "19531")
    monkeypatch.setenv("PINECONE_API_KEY", "pc-secret")
    monkeypatch.setenv("FEATURE_STORE_TTL_SECONDS", "120")
    monkeypatch.setenv("PREDICTION_HORIZON_DAYS", "3")
    monkeypatch.setenv("MIN_HISTORICAL_DAYS", "14")
    monkeypatch.setenv("AIETL_GATEWAY_PORT", "8080")
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+asyncpg://u:p@db:5432/aietl"
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.resolved_kafka_servers == "kafka:9092"
    assert not settings.embedded_broker
    assert settings.resolved_clickhouse_dsn == "clickhouse://ch:8123"
    assert (settings.milvus_host, settings.milvus_port) == ("milvus", 19531)
    assert settings.pinecone_api_key is not None and "pc-secret" not in repr(settings)
    assert settings.feature_store_ttl_seconds == 120
    assert settings.prediction_horizon_days == 3
    assert settings.min_historical_days == 14
    assert settings.gateway_port == 8080


def test_embedded_defaults_live_under_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_HOST", "CLICKHOUSE_DSN"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/aietl.db"
    assert settings.embedded_broker
    assert settings.resolved_kafka_servers == "127.0.0.1:9092"
    assert settings.resolved_clickhouse_dsn == f"chdb://{tmp_path.resolve()}/clickhouse"


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_STORE_TTL_SECONDS", "0")
    with pytest.raises(ValidationError, match=r"(?i)feature_store_ttl_seconds"):
        Settings()


def test_redis_url_makes_redis_the_online_store_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AIETL_FEATURES_ONLINE_STORE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    sqlite = f"sqlite:///{(tmp_path / 'features_online.db').resolve()}"
    assert Settings(data_dir=tmp_path).resolved_features_online_store == sqlite
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    assert Settings(data_dir=tmp_path).resolved_features_online_store == "redis://cache:6379/2"
    for explicit, resolved in (
        ("sqlite", sqlite),
        ("redis", "redis://cache:6379/2"),
        ("redis://other:6379/0", "redis://other:6379/0"),
        ("sqlite:///elsewhere.db", "sqlite:///elsewhere.db"),
    ):
        monkeypatch.setenv("AIETL_FEATURES_ONLINE_STORE", explicit)
        assert Settings(data_dir=tmp_path).resolved_features_online_store == resolved
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("AIETL_FEATURES_ONLINE_STORE", "redis")
    with pytest.raises(ValueError, match="needs REDIS_URL"):
        _ = Settings(data_dir=tmp_path).resolved_features_online_store


def test_only_test_environments_hash_passwords_cheaply(tmp_path) -> None:
    """Tests hash with argon2's cheapest parameters; every other environment with the default
    profile; a hash made either way verifies in both."""
    from aietl.services.gateway import security

    try:
        security.use_password_hashing_of(Settings(environment="test", data_dir=tmp_path))
        cheap = security.hash_password("pw-1")
        security.use_password_hashing_of(Settings(environment="embedded", data_dir=tmp_path))
        standard = security.hash_password("pw-1")
    finally:
        security.use_password_hashing_of(Settings(environment="test", data_dir=tmp_path))
    assert "$m=8,t=1,p=1$" in cheap and "$m=65536,t=3,p=4$" in standard
    assert security.verify_password(cheap, "pw-1") and security.verify_password(standard, "pw-1")
    assert not security.verify_password(cheap, "pw-2")
