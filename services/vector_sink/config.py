"""Connector configurations (the seed's JSON), validated per store type; secrets kept apart.

A configuration is stored in two halves: the options in plain JSON, and the secret fields
(`api_key`, `token`, `embedding_api_key`) sealed by `aietl.shared.secret_box.SecretBox`. Responses show
`"***"` for a set secret; logs never see them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from aietl.services.vector_sink.domain.chunking import ChunkingPolicy
from aietl.services.vector_sink.domain.model import FieldType, Metric
from aietl.services.vector_sink.embeddings import DEFAULT_MODEL, EmbeddingConfig

StoreType = Literal["milvus", "weaviate", "pinecone"]
SECRET_FIELDS = ("api_key", "token", "embedding_api_key")
REDACTED = "***"


class CommonOptions(BaseModel):
    """What every connector shares: distance, chunking, metadata schema and embedding model."""

    model_config = ConfigDict(extra="forbid")

    metric: Metric = "cosine"
    metadata_schema: dict[str, FieldType] = Field(default_factory=dict)
    chunk_size: int = Field(default=1_000, ge=16, le=60_000)
    chunk_overlap: int = Field(default=150, ge=0)
    markdown: bool = True
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str = DEFAULT_MODEL
    embedding_base_url: str | None = None
    embedding_dimension: int | None = Field(default=None, ge=1, le=8_192)
    embedding_api_key: SecretStr | None = None
    dimension: int | None = Field(
        default=None,
        ge=1,
        le=8_192,
        description="The index's vector dimension (the specification's `dimension`); defaults to the "
        "embedding model's. When it differs from the model's, documents must carry their `embedding`.",
    )

    def chunking(self) -> ChunkingPolicy:
        return ChunkingPolicy(self.chunk_size, min(self.chunk_overlap, self.chunk_size - 1), self.markdown)

    def embedding(self) -> EmbeddingConfig:
        return EmbeddingConfig(
            self.embedding_provider,
            self.embedding_model,
            self.embedding_base_url,
            self.embedding_dimension or (self.dimension if self.embedding_provider != "local" else None),
        )


class MilvusOptions(CommonOptions):
    """`uri` (a file for Milvus Lite or `http://host:19530`), else MILVUS_HOST, else Lite under data_dir."""

    uri: str | None = None
    host: str | None = None
    port: int = Field(default=19530, ge=1, le=65535)
    db_name: str = ""
    token: SecretStr | None = None


class WeaviateOptions(CommonOptions):
    """`url` of the REST API (else WEAVIATE_URL); gRPC on `grpc_host`:`grpc_port`."""

    url: str | None = None
    grpc_host: str | None = None
    grpc_port: int = Field(default=50051, ge=1, le=65535)
    api_key: SecretStr | None = None


class PineconeOptions(CommonOptions):
    """`index_host` (data plane URL) or `index_name` resolved through the control plane.

    `environment` is the specification's (and older Pinecone clients') `<region>-<cloud>` name, such
    as `us-west1-gcp`; it sets `region` and `cloud` for an index the connector creates, unless
    those are given themselves."""

    index_host: str | None = None
    index_name: str | None = None
    control_host: str | None = None
    environment: str | None = Field(default=None, max_length=64)
    cloud: str = "aws"
    region: str = "us-east-1"
    api_key: SecretStr | None = None

    @model_validator(mode="after")
    def _region_from_environment(self) -> PineconeOptions:
        if self.environment:
            region, _, cloud = self.environment.rpartition("-")
            if region and cloud in PINECONE_CLOUDS:
                if "region" not in self.model_fields_set:
                    self.region = region
                if "cloud" not in self.model_fields_set:
                    self.cloud = cloud
        return self


PINECONE_CLOUDS = ("aws", "gcp", "azure")


OPTIONS: dict[str, type[CommonOptions]] = {
    "milvus": MilvusOptions,
    "weaviate": WeaviateOptions,
    "pinecone": PineconeOptions,
}


def parse_options(store_type: str, config: dict[str, Any]) -> CommonOptions:
    return OPTIONS[store_type].model_validate(config)


def split_secrets(options: CommonOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """(plain options to store as JSON, secrets to encrypt)."""
    plain = options.model_dump(mode="json", exclude=set(SECRET_FIELDS), exclude_none=True)
    secrets = {
        name: value.get_secret_value()
        for name in SECRET_FIELDS
        if isinstance(value := getattr(options, name, None), SecretStr)
    }
    return plain, secrets


def redacted(plain: dict[str, Any], secret_names: list[str]) -> dict[str, Any]:
    return {**plain, **dict.fromkeys(secret_names, REDACTED)}
