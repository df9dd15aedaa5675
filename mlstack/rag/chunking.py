"""Cutting documents into chunks with LangChain's text splitters.

Docs are cut along their structure: Markdown by headings first (each chunk keeps its heading
path), then by LangChain's Markdown or RST separators. Slack threads and GitHub discussions are
cut between messages: a thread stays in one chunk where it fits, and only a message longer than
a chunk is cut inside.

A chunk's id is a hash of its document's id and of everything embedded for it, so identical
content always maps to the same id, and an unchanged chunk of an edited document keeps its id
(and its embedding).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache

from mlstack.rag.sources import Document, content_hash

# Between messages: a record separator no message holds, so the splitter cuts there first.
_UNIT = "\n\x1e\n"
HEADINGS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_JOINERS = re.compile(r"[._/\\:]+|(?<=\w)-(?=\w)|_+")


def words(identifier: str) -> str:
    """`pandas.DataFrame.drop_duplicates` -> `pandas Data Frame drop duplicates`."""
    return " ".join(_CAMEL.sub(" ", _JOINERS.sub(" ", identifier)).split())


@dataclass(frozen=True)
class Chunk:
    id: str
    document_id: str
    ord: int
    title: str
    heading: str
    text: str

    @property
    def embed_text(self) -> str:
        """What is embedded: the title and heading carry much of a chunk's meaning, and an
        identifier in them (`DataFrame.drop_duplicates`) is embedded as the words it is made of."""
        title = self.title if " " in self.title.strip() else words(self.title)
        return "\n".join(part for part in (title, self.heading, self.text) if part)


@cache
def _splitter(kind: str, size: int, overlap: int):  # -> RecursiveCharacterTextSplitter
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    if kind in ("markdown", "rst"):
        language = Language.MARKDOWN if kind == "markdown" else Language.RST
        return RecursiveCharacterTextSplitter.from_language(language, chunk_size=size, chunk_overlap=overlap)
    separators = [_UNIT, "\n\n", "\n", ". ", " ", ""]
    return RecursiveCharacterTextSplitter(separators=separators, chunk_size=size, chunk_overlap=overlap)


def _sections(document: Document) -> list[tuple[str, str]]:
    """(heading path, text) pieces of a document before size splitting."""
    if document.format == "markdown":
        from langchain_text_splitters import MarkdownHeaderTextSplitter

        splitter = MarkdownHeaderTextSplitter(HEADINGS, strip_headers=False)
        pieces = splitter.split_text(document.text)
        return [
            (
                " > ".join(piece.metadata[key] for _, key in HEADINGS if key in piece.metadata),
                piece.page_content,
            )
            for piece in pieces
        ]
    if document.format == "rst":
        return [("", document.text)]
    return [("", _UNIT.join(document.units))]


def chunk(document: Document, size: int, overlap: int) -> list[Chunk]:
    kind = document.format if document.kind == "docs" else "units"
    splitter = _splitter(kind, size, min(overlap, size // 2))
    chunks: list[Chunk] = []
    seen: Counter[str] = Counter()
    for heading, text in _sections(document):
        for piece in splitter.split_text(text):
            piece = piece.replace(_UNIT, "\n\n").replace("\x1e", "").strip()
            if not piece:
                continue
            draft = Chunk("", document.id, len(chunks), document.title, heading, piece)
            key = draft.embed_text
            seen[key] += 1  # the same text twice in one document: two chunks, two ids
            chunk_id = content_hash(document.id, key, str(seen[key]))[:32]
            chunks.append(Chunk(chunk_id, document.id, len(chunks), document.title, heading, piece))
    return chunks
