"""Embeddings: the packaged model offline, and the OpenAI embeddings API over a fake transport."""

from __future__ import annotations

import numpy as np
import pytest

from mlstack.llm import LLMError
from mlstack.llm.embeddings import OpenAIEmbedder, resolve_embedder
from mlstack.llm.providers import ModelInfo
from mlstack.settings import Settings
from tests.mlstack.llm.openai_fakes import FakeOpenAI, embedding_page


def test_openai_embeddings_keep_input_order_and_learn_their_dimension() -> None:
    vectors = [[float(i)] * 8 for i in range(3)]
    fake = FakeOpenAI(
        [(200, embedding_page(vectors[:1], [0]), {}), (200, embedding_page(vectors, [2, 0, 1]), {})]
    )
    embedder = OpenAIEmbedder(fake.endpoint(), "my-embedder")
    info = embedder.info  # an unknown model: its dimension is asked for once
    assert (info.provider, info.model, info.dimension) == ("openai", "my-embedder", 8)
    assert np.array_equal(embedder.embed(["a", "b", "c"]), np.array(vectors, dtype=np.float32))
    wrong = FakeOpenAI([(200, embedding_page(vectors, [0, 1, 2]), {})])
    with pytest.raises(LLMError, match="8-dimensional vectors for text-embedding-3-small, expected 1536"):
        OpenAIEmbedder(wrong.endpoint(), "text-embedding-3-small").embed(["a", "b", "c"])


def test_the_packaged_embedding_model_works_offline() -> None:
    embedder = resolve_embedder(Settings())
    assert embedder.info == ModelInfo("local", "all-MiniLM-L6-v2", 384)
    csv, csv_too, other = embedder.embed(
        ["How do I read a CSV file?", "Loading a CSV file into a DataFrame", "The train leaves at noon."]
    )
    assert np.isclose(np.linalg.norm(csv), 1.0, atol=1e-5)
    assert csv @ csv_too > csv @ other + 0.2
