"""One module per vector store behind `VectorStore`; `open_store` picks it by the connector's type."""

from __future__ import annotations

from services.vector_sink.config import CommonOptions, MilvusOptions, PineconeOptions, WeaviateOptions
from services.vector_sink.connectors.base import VectorStore
from services.vector_sink.embeddings import Embedder
from shared.settings import Settings


def milvus_uri(options: MilvusOptions, settings: Settings) -> str:
    """The connector's `uri`, else a `host`, else MILVUS_HOST, else Milvus Lite under data_dir."""
    if options.uri:
        return options.uri
    host = options.host or settings.milvus_host
    if host:
        port = options.port if options.host else settings.milvus_port
        return f"http://{host}:{port}"
    return str((settings.data_dir / "milvus" / "vectors.db").resolve())


def open_store(
    options: CommonOptions, secrets: dict[str, str], settings: Settings, embedder: Embedder | None
) -> VectorStore:
    """A connected store for a connector (imports only the client library it needs)."""
    store: VectorStore
    if isinstance(options, MilvusOptions):
        from services.vector_sink.connectors.milvus import MilvusStore

        store = MilvusStore(milvus_uri(options, settings), secrets.get("token"), options.db_name, embedder)
    elif isinstance(options, WeaviateOptions):
        from services.vector_sink.connectors.weaviate import WeaviateStore

        url = options.url or settings.weaviate_url
        if not url:
            raise ValueError("weaviate connector: set `url` or WEAVIATE_URL")
        store = WeaviateStore(url, options.grpc_host, options.grpc_port, secrets.get("api_key"), embedder)
    elif isinstance(options, PineconeOptions):
        from services.vector_sink.connectors.pinecone import PineconeStore

        key = secrets.get("api_key") or (
            settings.pinecone_api_key.get_secret_value() if settings.pinecone_api_key else None
        )
        if not key:
            raise ValueError("pinecone connector: set `api_key` or PINECONE_API_KEY")
        store = PineconeStore(
            key,
            index_host=options.index_host,
            index_name=options.index_name,
            control_host=options.control_host,
            cloud=options.cloud,
            region=options.region,
            metric=options.metric,
            embedder=embedder,
        )
    else:
        raise ValueError(f"unknown connector options {type(options).__name__}")
    store.connect()
    return store
