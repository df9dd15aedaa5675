"""Refresh batches: bounded in documents and in bytes, so each transaction commits in bounded time."""

from __future__ import annotations

from mlstack.rag.refresh import batches
from mlstack.rag.sources import Document


def doc(n: int, size: int) -> Document:
    return Document(id=f"d{n}", kind="docs", title=f"d{n}", units=("x" * size,))


def test_batches_end_at_a_count_or_before_passing_the_bytes() -> None:
    documents = [doc(n, size) for n, size in enumerate([10, 10, 10, 10, 90, 5, 200, 1])]
    cut = batches(documents, size=3, max_bytes=100)
    assert [[d.id for d in b] for b in cut] == [["d0", "d1", "d2"], ["d3", "d4"], ["d5"], ["d6"], ["d7"]]
    assert [d for b in cut for d in b] == documents  # nothing lost, nothing twice, in order
    assert batches([], size=3, max_bytes=100) == []
