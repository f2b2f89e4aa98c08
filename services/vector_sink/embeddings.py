"""Embedding models: the committed local static model by default, or an OpenAI-compatible endpoint.

The default works offline: a model2vec static model distilled from all-MiniLM-L6-v2 (see
`models/distill.py`), 256 dimensions, loaded from this repository; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import httpx
import numpy as np

from aietl.services.vector_sink.domain.model import ConnectorConfigError
from aietl.shared.outbound import OutboundPolicy, checked_transport

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "minilm-l6-v2-m2v-256"
DEFAULT_MODEL = "minilm-l6-v2-m2v-256"


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed dimension."""

    name: str  # part of the cache key: vectors of different models never mix
    dimension: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def _normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


class StaticModelEmbedder:
    """A model2vec static model from a local directory: ~20,000 texts/s on two cores."""

    def __init__(self, path: Path = DEFAULT_MODEL_DIR, name: str = DEFAULT_MODEL) -> None:
        from model2vec import StaticModel

        if not (path / "model.safetensors").exists():
            raise FileNotFoundError(f"no model2vec model in {path}")
        self._model = StaticModel.from_pretrained(path, force_download=False)
        self.name = name
        self.dimension = int(self._model.dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return _normalized(self._model.encode(texts))


class OpenAICompatibleEmbedder:
    """`POST {base_url}/embeddings` as OpenAI, vLLM, Ollama, LiteLLM and TEI's OpenAI route speak it."""

    def __init__(
        self,
        base_url: str,
        model: str,
        dimension: int,
        api_key: str | None = None,
        timeout: float = 60.0,
        batch_size: int = 256,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        """`outbound`: every connection is checked against it and made to the checked address."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        transport = checked_transport(outbound) if outbound is not None else None
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._model = model
        self._batch_size = batch_size
        self.name = f"openai:{model}"
        self.dimension = dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            response = self._client.post(
                "/embeddings", json={"model": self._model, "input": texts[start : start + self._batch_size]}
            )
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            rows.extend(item["embedding"] for item in data)
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        if len(rows) and vectors.shape[1] != self.dimension:
            raise ConnectorConfigError(
                f"endpoint returned dimension {vectors.shape[1]}, expected {self.dimension}"
            )
        return _normalized(vectors) if len(rows) else np.zeros((0, self.dimension), np.float32)


@dataclass(frozen=True)
class EmbeddingConfig:
    """Per connector: which model embeds its texts (the local static model unless said otherwise)."""

    provider: Literal["local", "openai"] = "local"
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    dimension: int | None = None


_local_models: dict[str, StaticModelEmbedder] = {}


def create_embedder(
    config: EmbeddingConfig, api_key: str | None = None, outbound: OutboundPolicy | None = None
) -> Embedder:
    """The connector's model; an endpoint's host is checked against `outbound` first (a user wrote it)."""
    if config.provider == "openai":
        if not config.base_url or not config.dimension:
            raise ConnectorConfigError("an openai embedding provider needs `base_url` and `dimension`")
        if outbound is not None:
            outbound.check_url(config.base_url)
        return OpenAICompatibleEmbedder(
            config.base_url, config.model, config.dimension, api_key, outbound=outbound
        )
    if config.model != DEFAULT_MODEL:
        raise ConnectorConfigError(
            f"unknown local model {config.model!r}; the local model is {DEFAULT_MODEL!r}"
        )
    if DEFAULT_MODEL not in _local_models:  # one copy per process, shared by every connector
        _local_models[DEFAULT_MODEL] = StaticModelEmbedder()
    return _local_models[DEFAULT_MODEL]
