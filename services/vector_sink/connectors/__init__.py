"""One module per vector store behind `VectorStore`; `open_store` picks it by the connector's type.

Every address a user wrote into a connector (store URL, gRPC host, Pinecone hosts, embedding
endpoint, Milvus Lite file) goes through `aietl.shared.outbound` before anything connects: hosts must be
allowed and resolve to addresses the operator allows, files must lie inside the data directory.
Plaintext connections go to the address that was checked; TLS ones keep the name for the certificate.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aietl.services.vector_sink.config import CommonOptions, MilvusOptions, PineconeOptions, WeaviateOptions
from aietl.services.vector_sink.connectors.base import VectorStore
from aietl.services.vector_sink.domain.model import ConnectorConfigError
from aietl.services.vector_sink.embeddings import Embedder
from aietl.shared.outbound import OutboundPolicy, inside, pinned_url
from aietl.shared.settings import Settings

MILVUS_SCHEMES = {"http": False, "https": True, "tcp": False}  # scheme -> TLS
PINECONE_CONTROL_HOST = "https://api.pinecone.io"


def https_url(host: str) -> str:
    """Pinecone hosts may be given without a scheme; its clients then speak HTTPS."""
    return host if "://" in host else f"https://{host}"


def reachable_url(url: str, policy: OutboundPolicy, default_port: int | None = None) -> str:
    """`url` checked; for plaintext schemes, with its host replaced by the checked address."""
    destination = policy.check_url(url, default_port)
    return url if urlsplit(url).scheme.lower() in ("https", "grpcs") else pinned_url(url, destination)


def milvus_uri(options: MilvusOptions, settings: Settings, policy: OutboundPolicy) -> str:
    """The connector's `uri` (a server URL, or a Milvus Lite file inside the data directory), else a
    `host`, else MILVUS_HOST, else Milvus Lite under data_dir."""
    if options.uri:
        if "://" not in options.uri:
            return str(inside(settings.data_dir, options.uri))
        scheme = urlsplit(options.uri).scheme.lower()
        if scheme not in MILVUS_SCHEMES:
            raise ConnectorConfigError(f"uri: scheme {scheme!r} is not one of {', '.join(MILVUS_SCHEMES)}")
        return reachable_url(options.uri, policy, options.port)
    if options.host:
        return reachable_url(f"http://{options.host}:{options.port}", policy)
    if settings.milvus_host:
        return f"http://{settings.milvus_host}:{settings.milvus_port}"
    return str((settings.data_dir / "milvus" / "vectors.db").resolve())


def _weaviate(options: WeaviateOptions, settings: Settings, policy: OutboundPolicy) -> tuple[str, str]:
    """(REST URL, gRPC host), both checked; plaintext ones pinned to the checked address."""
    url = options.url or settings.weaviate_url
    if not url:
        raise ConnectorConfigError("weaviate connector: set `url` or WEAVIATE_URL")
    parts = urlsplit(url)
    grpc = policy.check(options.grpc_host or parts.hostname or "", options.grpc_port)
    grpc_host = grpc.host if parts.scheme.lower() == "https" else grpc.addresses[0]
    return reachable_url(url, policy), grpc_host


def _pinecone_host(options: PineconeOptions) -> str:
    """The host the connector talks to first: its index, else the control plane that finds it."""
    return options.index_host or options.control_host or PINECONE_CONTROL_HOST


def check_destinations(options: CommonOptions, settings: Settings, policy: OutboundPolicy) -> None:
    """Refuse a configuration whose addresses may not be reached (raises OutboundRefused/PathRefused)."""
    if options.embedding_provider == "openai" and options.embedding_base_url:
        policy.check_url(options.embedding_base_url)
    if isinstance(options, MilvusOptions):
        milvus_uri(options, settings, policy)
    elif isinstance(options, WeaviateOptions) and (options.url or settings.weaviate_url):
        _weaviate(options, settings, policy)
    elif isinstance(options, PineconeOptions):
        policy.check_url(https_url(_pinecone_host(options)))


def open_store(
    options: CommonOptions,
    secrets: dict[str, str],
    settings: Settings,
    embedder: Embedder | None,
    policy: OutboundPolicy,
) -> VectorStore:
    """A connected store for a connector (imports only the client library it needs)."""
    store: VectorStore
    if isinstance(options, MilvusOptions):
        from aietl.services.vector_sink.connectors.milvus import MilvusStore

        uri = milvus_uri(options, settings, policy)
        store = MilvusStore(uri, secrets.get("token"), options.db_name, embedder)
    elif isinstance(options, WeaviateOptions):
        from aietl.services.vector_sink.connectors.weaviate import WeaviateStore

        url, grpc_host = _weaviate(options, settings, policy)
        store = WeaviateStore(url, grpc_host, options.grpc_port, secrets.get("api_key"), embedder)
    elif isinstance(options, PineconeOptions):
        from aietl.services.vector_sink.connectors.pinecone import PineconeStore

        key = secrets.get("api_key") or (
            settings.pinecone_api_key.get_secret_value() if settings.pinecone_api_key else None
        )
        if not key:
            raise ConnectorConfigError("pinecone connector: set `api_key` or PINECONE_API_KEY")
        index_host = options.index_host and reachable_url(https_url(options.index_host), policy)
        if not index_host:
            policy.check_url(https_url(_pinecone_host(options)))
        store = PineconeStore(
            key,
            index_host=index_host or None,
            index_name=options.index_name,
            control_host=options.control_host,
            cloud=options.cloud,
            region=options.region,
            metric=options.metric,
            embedder=embedder,
            outbound=policy,
        )
    else:
        raise ConnectorConfigError(f"unknown connector options {type(options).__name__}")
    store.connect()
    return store
