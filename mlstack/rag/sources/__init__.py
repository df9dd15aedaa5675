"""The sources RAG reads: one module per external system, each yielding `Document`s.

A source never crashes on one bad record: it skips it and names the file and the record in its
`SourceRead.skipped`, which the refresh reports. A read is `complete` when it saw everything the
source holds (a folder, an export, a dump), so documents it lacks were deleted upstream; an
incremental API read is not, and deletes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from mlstack.errors import InputError
from mlstack.sources import Skipped

Kind = Literal["docs", "slack", "github"]
KINDS: tuple[str, ...] = ("docs", "slack", "github")


def content_hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Document:
    """One document: a docs file, a Slack thread, a GitHub issue or pull request.

    `units` are the pieces chunking keeps whole where they fit (a Slack message, an issue comment);
    a docs file is one unit that the Markdown or RST splitter cuts.
    """

    id: str
    kind: Kind
    title: str
    units: tuple[str, ...]
    url: str | None = None
    path: str | None = None
    author: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    format: Literal["markdown", "rst", "text"] = "text"

    @property
    def text(self) -> str:
        return "\n\n".join(self.units)

    @property
    def size(self) -> int:
        """UTF-8 bytes of its text: what the size limit and the refresh's batches count."""
        return len(self.text.encode("utf-8", "surrogatepass"))

    @property
    def hash(self) -> str:
        """Changes whenever anything a reader or a search sees changes."""
        return content_hash(self.title, self.url or "", self.path or "", self.author or "", *self.units)


@dataclass
class SourceRead:
    """What one read of one source gave."""

    source: str  # "kind:location", the source's identity in the store
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    complete: bool = True
    cursor: str | None = None  # where an incremental read goes on next time
    stopped: str | None = None  # why a read ended early (a rate limit), if it did


@dataclass(frozen=True)
class SourceSpec:
    kind: Kind
    location: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}"


def parse_spec(text: str) -> SourceSpec:
    """`KIND:LOCATION` as the command line gives it."""
    kind, sep, location = text.partition(":")
    if not sep or kind not in KINDS or not location:
        raise InputError(
            f"--source {text!r}: expected KIND:LOCATION with KIND one of {', '.join(KINDS)}, e.g."
            " docs:./docs, slack:./export, github:./dump.json or github:owner/repo"
        )
    if kind == "docs" or Path(location).exists():
        location = str(Path(location).expanduser().resolve())
    return SourceSpec(kind, location)  # type: ignore[arg-type]


def too_large(size: int, limit: int) -> str:
    return (
        f"{size:,} bytes, over the limit of {limit:,} (MLSTACK_RAG_MAX_DOCUMENT_BYTES):"
        " raise it to read this document"
    )


def read(spec: SourceSpec, settings: Any, cursor: str | None = None, http_client: Any = None) -> SourceRead:
    """Read one source, whichever system it is; a document over the size limit is skipped."""
    limit = settings.rag.max_document_bytes
    if spec.kind == "docs":
        from mlstack.rag.sources import docs

        return docs.read(Path(spec.location), str(spec), limit)
    if spec.kind == "slack":
        from mlstack.rag.sources import slack

        if Path(spec.location).is_dir():
            result = slack.read_export(Path(spec.location), str(spec))
        else:
            result = slack.read_api(spec.location, str(spec), settings, cursor, http_client)
    else:
        from mlstack.rag.sources import github

        if Path(spec.location).is_file():
            result = github.read_dump(Path(spec.location), str(spec))
        else:
            result = github.read_api(spec.location, str(spec), settings, cursor, http_client)
    kept = []
    for document in result.documents:
        if document.size > limit:
            result.skipped.append(Skipped(document.url or document.id, too_large(document.size, limit)))
        else:
            kept.append(document)
    result.documents = kept
    return result
