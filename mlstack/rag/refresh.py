"""What a refresh does, source by source: read, compare with the store, write what changed in
batches, delete what is gone, and remember an API source's cursor.

Each batch is one transaction that writes its documents' hashes with their chunks, so a refresh
killed anywhere leaves every document either as it was or as it is now; the rerun compares
hashes again and does only what is left. Deletions and cursors are written after every batch
has landed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlstack.rag import chunking, store
from mlstack.rag.sources import Document, SourceRead


@dataclass
class Plan:
    """One source's documents, sorted against the store."""

    added: list[Document] = field(default_factory=list)
    changed: list[Document] = field(default_factory=list)
    unchanged: int = 0

    @property
    def to_write(self) -> list[Document]:
        return self.added + self.changed


def plan(conn: Any, name: str, read: SourceRead) -> Plan:
    # A source repeating a record (an API page that shifted): the last one counts.
    read.documents = list({d.id: d for d in read.documents}.values())
    stored = store.hashes(conn, name, [d.id for d in read.documents])
    result = Plan()
    for document in read.documents:
        if document.id not in stored:
            result.added.append(document)
        elif stored[document.id] != document.hash:
            result.changed.append(document)
        else:
            result.unchanged += 1
    return result


def batches(documents: list[Document], size: int, max_bytes: int) -> list[list[Document]]:
    """Runs of at most `size` documents and, unless one document alone is more, `max_bytes` of
    text: each batch is one transaction, and a bounded one commits in bounded time."""
    result: list[list[Document]] = []
    current: list[Document] = []
    held = 0
    for document in documents:
        if current and (len(current) == size or held + document.size > max_bytes):
            result.append(current)
            current, held = [], 0
        current.append(document)
        held += document.size
    if current:
        result.append(current)
    return result


def ingest(
    conn: Any, name: str, source: str, documents: list[Document], embedder: Any, settings: Any
) -> dict[str, int]:
    """Chunk, embed what is not stored yet (in batches), and write: one transaction."""
    chunks = [
        c for d in documents for c in chunking.chunk(d, settings.rag.chunk_size, settings.rag.chunk_overlap)
    ]
    stored = store.stored_chunk_ids(conn, name, [d.id for d in documents])
    missing = [c for c in chunks if c.id not in stored]
    vectors = embedder.embed([c.embed_text for c in missing]) if missing else []
    loaded = store.write(
        conn, name, source, documents, chunks, {c.id: v for c, v in zip(missing, vectors, strict=True)}
    )
    return {"chunks": len(chunks), "embedded": loaded}


def finish(conn: Any, name: str, read: SourceRead) -> list[str]:
    """After every batch landed: delete what a complete source no longer has; keep the cursor."""
    deleted = store.prune(conn, name, read.source, [d.id for d in read.documents]) if read.complete else []
    if read.cursor:
        store.save_cursor(conn, name, read.source, read.cursor)
    return deleted


def run(conn: Any, name: str, read: SourceRead, embedder: Any, settings: Any) -> dict[str, int]:
    """One source's whole refresh in this process, batch after batch: what the flow does with a
    mapped task per batch, for scripts and tests that need no Prefect."""
    store.ensure_collection(conn, name, embedder.info)
    sorted_out = plan(conn, name, read)
    embedded = sum(
        ingest(conn, name, read.source, batch, embedder, settings)["embedded"]
        for batch in batches(
            sorted_out.to_write, settings.rag.batch_documents, settings.rag.max_document_bytes
        )
    )
    deleted = len(finish(conn, name, read))
    store.update_statistics(conn, embedded)
    return {
        "added": len(sorted_out.added),
        "changed": len(sorted_out.changed),
        "unchanged": sorted_out.unchanged,
        "deleted": deleted,
        "embedded": embedded,
    }
