"""RAG test helpers: spoilable copies of the samples, docs folders, and a refresh without Prefect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlstack.rag.defaults import SAMPLES
from mlstack.settings import Settings


@pytest.fixture
def slack_export(tmp_path: Path) -> Path:
    """A copy of the shipped Slack export, to spoil."""
    return Path(shutil.copytree(SAMPLES / "slack", tmp_path / "slack"))


def write_docs(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def day(folder: Path, channel: str, date: str, messages: list[dict]) -> None:
    (folder / channel / f"{date}.json").write_text(json.dumps(messages))


def refresh_docs(settings: Settings, name: str, folder: Path, batch: int = 2) -> dict[str, int]:
    """One refresh of a docs folder, as the flow does it, without Prefect, in batches of `batch`."""
    from mlstack.llm.embeddings import local_embedder
    from mlstack.rag import refresh, sources, store

    read = sources.read(sources.parse_spec(f"docs:{folder}"), settings)
    small_batches = settings.model_copy(
        update={"rag": settings.rag.model_copy(update={"batch_documents": batch})}
    )
    with store.connect(settings) as conn:
        return refresh.run(conn, name, read, local_embedder(), small_batches)
