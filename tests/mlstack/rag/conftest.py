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


def hostile_sources(tmp_path: Path) -> tuple[list[str], int, list[str]]:
    """Every kind of bad input a refresh has met, beside good documents: malformed Slack and
    GitHub records, NUL bytes, a name that is not UTF-8, a file over a 20 kB limit, a link out
    of the folder, and two folders with the same relative paths. Returns the sources, the good
    documents among them, and the end of each `where` a skipped record must have."""
    import os

    from tests.mlstack.sources import hostile

    export = Path(shutil.copytree(SAMPLES / "slack", tmp_path / "slack"))
    good = {"type": "message", "user": "U0MLS0001", "text": "a good one", "ts": "1789900001.000100"}
    day(export, "general", "2026-09-20", [good] + [record for _, _, record in hostile.SLACK_MESSAGES])
    dump = json.loads((SAMPLES / "github.json").read_text())
    issues, comments = len(dump["issues"]), len(dump["comments"])
    dump["issues"] += [record for _, _, record in hostile.GITHUB_ISSUES]
    dump["comments"] += [record for _, _, record in hostile.GITHUB_COMMENTS]
    (tmp_path / "github.json").write_text(json.dumps(dump))
    first = write_docs(tmp_path / "a", {"README.md": "# A\n\nFolder a.", "guide.md": "# Guide\n\nSteps."})
    second = write_docs(tmp_path / "b", {"README.md": "# B\n\nFolder b, same relative path."})
    (first / "nul.txt").write_text("text\x00more")
    (first / "heading.md").write_text("# Title\x00\n\nbody")
    (first / "huge.txt").write_text("many words " * 5_000)
    os.mkdir(os.path.join(bytes(first), b"caf\xe9"))
    Path(os.path.join(bytes(first), b"caf\xe9", b"notes.md").decode("utf-8", "surrogateescape")).write_text(
        "# N"
    )
    (tmp_path / "private.md").write_text("# Private\n\nnot in the folder")
    (first / "escape.md").symlink_to(tmp_path / "private.md")
    named = [f"general/2026-09-20.json record {n}" for n in range(1, len(hostile.SLACK_MESSAGES) + 1)]
    named += [f"issues[{issues + n}]" for n in range(len(hostile.GITHUB_ISSUES))]
    named += [f"comments[{comments + n}]" for n in range(len(hostile.GITHUB_COMMENTS))]
    named += ["nul.txt", "heading.md", "huge.txt", "notes.md", "escape.md"]
    specs = [f"slack:{export}", f"github:{tmp_path / 'github.json'}", f"docs:{first}", f"docs:{second}"]
    return specs, 6 + 1 + issues + 2 + 1, named
