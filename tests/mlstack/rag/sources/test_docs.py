"""Docs: Markdown, RST and text under a folder; absolute paths are identities, relative ones are
shown; bad and oversized files skipped and named."""

from __future__ import annotations

from pathlib import Path

from mlstack.rag.sources import docs, parse_spec
from tests.mlstack.rag.conftest import write_docs


def test_reads_markdown_rst_and_text_with_paths_as_ids(tmp_path: Path) -> None:
    root = write_docs(
        tmp_path / "handbook",
        {
            "guide/setup.md": "# Setting up\n\nInstall it.",
            "api.rst": "API reference\n=============\n\nCalls.",
            "notes.txt": "plain notes",
            ".hidden/secret.md": "# no",
            "image.png": "not text",
        },
    )
    read = docs.read(root, str(parse_spec(f"docs:{root}")))
    by_path = {d.path: d for d in read.documents}
    assert set(by_path) == {"guide/setup.md", "api.rst", "notes.txt"}
    assert by_path["guide/setup.md"].id == f"docs:{root.resolve()}/guide/setup.md"
    assert by_path["guide/setup.md"].title == "Setting up"
    assert by_path["api.rst"].title == "API reference"
    assert by_path["notes.txt"].title == "notes"
    assert read.complete and not read.skipped
    assert {d.id for d in docs.read(root, "docs:again").documents} == {d.id for d in read.documents}


def test_two_folders_with_the_same_relative_paths_are_two_sets_of_documents(tmp_path: Path) -> None:
    """Relative ids made them overwrite each other: one was lost, both re-embedded every refresh."""
    first = write_docs(tmp_path / "a", {"README.md": "# A\n\nabout a"})
    second = write_docs(tmp_path / "b", {"README.md": "# B\n\nabout b"})
    ids = [d.id for root in (first, second) for d in docs.read(root, f"docs:{root}").documents]
    assert len(set(ids)) == 2
    moved = tmp_path / "moved"
    first.rename(moved)  # a new place is a new source: the old one's documents are pruned by name
    assert [d.id for d in docs.read(moved, "docs:moved").documents] != ids[:1]


def test_a_file_over_the_size_limit_is_skipped_unread_and_named(tmp_path: Path) -> None:
    root = write_docs(tmp_path / "d", {"small.md": "# Small\n\nfits", "big.txt": "x" * 5_000})
    read = docs.read(root, "docs:d", max_bytes=1_000)
    assert [d.path for d in read.documents] == ["small.md"]
    [skipped] = read.skipped
    assert skipped.where.endswith("big.txt") and skipped.reason.startswith(
        "5,000 bytes, over the limit of 1,000"
    )
    assert "MLSTACK_RAG_MAX_DOCUMENT_BYTES" in skipped.reason


def test_an_unreadable_or_empty_file_is_skipped_and_named(tmp_path: Path) -> None:
    root = write_docs(tmp_path / "d", {"ok.md": "# Fine\n\ntext", "empty.md": "  \n"})
    (root / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    read = docs.read(root, "docs:d")
    assert [d.path for d in read.documents] == ["ok.md"]
    reasons = {Path(s.where).name: s.reason for s in read.skipped}
    assert reasons["empty.md"] == "empty"
    assert "not UTF-8" in reasons["latin1.md"]


def test_a_missing_folder_is_not_a_complete_read(tmp_path: Path) -> None:
    read = docs.read(tmp_path / "gone", "docs:gone")
    assert not read.complete and read.skipped  # so nothing read from it before is deleted


def test_nul_bytes_foreign_names_and_outward_links_are_skipped_and_named(tmp_path: Path) -> None:
    """Each failed its batch or the whole refresh, or (the link) read a file the user never named."""
    import os

    root = write_docs(tmp_path / "d", {"ok.md": "# Fine\n\ntext", "inner.md": "# Inner\n\nkept"})
    (root / "nul.txt").write_text("text\x00more")
    (root / "heading.md").write_text("# Title\x00\n\nbody")
    os.mkdir(os.path.join(bytes(root), b"caf\xe9"))
    with open(os.path.join(bytes(root), b"caf\xe9", b"notes.md"), "w") as f:
        f.write("# Latin-1 folder name\n\ntext")
    outside = tmp_path / "private.md"
    outside.write_text("# Private\n\nnot in the folder")
    (root / "escape.md").symlink_to(outside)
    (root / "alias.md").symlink_to(root / "inner.md")  # inside the folder: fine
    read = docs.read(root, "docs:d")
    assert sorted(d.path for d in read.documents) == ["alias.md", "inner.md", "ok.md"]
    reasons = {s.where.rsplit("/", 1)[-1]: s.reason for s in read.skipped}
    assert reasons["nul.txt"].startswith("holds a NUL byte") and reasons["heading.md"].startswith(
        "holds a NUL"
    )
    assert reasons["notes.md"] == "its name is not UTF-8: rename it"
    assert "caf\\xe9" in next(s.where for s in read.skipped if s.where.endswith("notes.md"))
    assert reasons["escape.md"].startswith("a link to a file outside the folder")
    assert all(s.where.encode("utf-8") for s in read.skipped)  # every name printable and storable
