"""Chunking: LangChain's splitters, Markdown headings kept, threads kept whole, stable ids."""

from __future__ import annotations

from mlstack.rag.chunking import chunk, words
from mlstack.rag.sources import Document


def doc(units: tuple[str, ...], fmt: str = "text", kind: str = "slack", doc_id: str = "d1") -> Document:
    return Document(id=doc_id, kind=kind, title="T", units=units, format=fmt)  # type: ignore[arg-type]


def test_markdown_chunks_carry_their_heading_path() -> None:
    text = "# Guide\n\nIntro.\n\n## Install\n\n" + "Run pip install. " * 60 + "\n\n## Use\n\nCall it."
    chunks = chunk(doc((text,), "markdown", "docs"), 500, 50)
    headings = [c.heading for c in chunks]
    assert headings[0] == "Guide" and "Guide > Install" in headings and headings[-1] == "Guide > Use"
    assert all(len(c.text) <= 500 for c in chunks)


def test_a_thread_that_fits_stays_in_one_chunk_and_a_long_one_breaks_between_messages() -> None:
    short = doc(("ana: question?", "kofi: answer.", "ana: thanks"))
    assert [c.text for c in chunk(short, 500, 50)] == ["ana: question?\n\nkofi: answer.\n\nana: thanks"]
    messages = tuple(f"user{i}: " + "word " * 30 + "end" for i in range(10))  # ~160 characters each
    pieces = chunk(doc(messages), 500, 0)
    assert len(pieces) > 1
    for piece in pieces:  # no message is cut: every piece is whole messages
        assert all(part in messages for part in piece.text.split("\n\n"))


def test_ids_are_stable_and_follow_content() -> None:
    first = [c.id for c in chunk(doc(("a: hello", "b: world")), 500, 0)]
    assert first == [c.id for c in chunk(doc(("a: hello", "b: world")), 500, 0)]
    assert first != [c.id for c in chunk(doc(("a: hello", "b: world!")), 500, 0)]
    assert first != [c.id for c in chunk(doc(("a: hello", "b: world"), doc_id="d2"), 500, 0)]
    twice = chunk(doc(("x " * 200, "x " * 200)), 410, 0)  # the same text twice in one document
    assert len({c.id for c in twice}) == len(twice) == 2


def test_identifiers_are_embedded_as_words() -> None:
    assert words("pandas.DataFrame.drop_duplicates") == "pandas Data Frame drop duplicates"
    title = chunk(Document(id="x", kind="docs", title="pandas.DataFrame.head", units=("Rows.",)), 500, 0)[0]
    assert title.embed_text.startswith("pandas Data Frame head\n")
