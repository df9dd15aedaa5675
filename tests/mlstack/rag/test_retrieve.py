"""Retrieval on the real store: each mode, per-document ranking, and the source and date filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlstack.llm.embeddings import local_embedder
from mlstack.rag import defaults, refresh, retrieve, sources, store
from mlstack.settings import Settings


@pytest.fixture
def samples(rag_settings: Settings, collection: str) -> str:
    """The shipped Slack export and GitHub dump in a collection."""
    with store.connect(rag_settings) as conn:
        for spec in defaults.sources()[:2]:
            read = sources.read(sources.parse_spec(spec), rag_settings)
            refresh.run(conn, collection, read, local_embedder(), rag_settings)
    return collection


def search(settings: Settings, name: str, query: str, **kwargs) -> list[retrieve.Hit]:
    with store.connect(settings) as conn:
        coll = store.require_collection(conn, name)
        return retrieve.search(conn, coll, query, local_embedder().embed([query])[0], **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("mode", retrieve.MODES)
def test_each_mode_finds_the_thread_that_answers(rag_settings: Settings, samples: str, mode: str) -> None:
    hits = search(rag_settings, samples, "retraining cooldown after a drift alert", k=3, mode=mode)
    assert hits[0].document_id == "slack:C0MLS0002:1789466500.000200"
    assert hits[0].url == "https://slack.com/archives/C0MLS0002/p1789466500000200"
    assert len({h.document_id for h in hits}) == len(hits)  # one hit per document
    assert all(-1 <= h.similarity <= 1 for h in hits)


@pytest.mark.slow
def test_full_text_needs_no_word_to_be_in_every_document(rag_settings: Settings, samples: str) -> None:
    # "apprise" is in one issue only; the other words are in none: an AND query would find nothing.
    hits = search(rag_settings, samples, "apprise zebra unicorn", k=5, mode="fulltext")
    assert [h.document_id for h in hits] == ["github:mlstack-org/mlstack#63"]


@pytest.mark.slow
def test_filters_by_source_kind_and_date(rag_settings: Settings, samples: str) -> None:
    query = "how do I switch the language model"
    only_slack = search(rag_settings, samples, query, k=10, filters=retrieve.Filters(kinds=("slack",)))
    assert only_slack and {h.kind for h in only_slack} == {"slack"}
    window = retrieve.Filters(since=datetime(2026, 9, 8, tzinfo=UTC), until=datetime(2026, 9, 11, tzinfo=UTC))
    dated = search(rag_settings, samples, query, k=10, filters=window)
    assert {h.document_id for h in dated} == {"github:mlstack-org/mlstack#63"}
    assert all(window.since <= h.updated_at < window.until for h in dated)  # type: ignore[operator]


@pytest.mark.slow
def test_a_missing_collection_says_how_to_fill_it(rag_settings: Settings) -> None:
    from mlstack.rag import RAGError

    with pytest.raises(RAGError, match="mlstack rag refresh --collection nothing-here"):
        search(rag_settings, "nothing-here", "anything")


@pytest.mark.slow
def test_full_text_finds_identifiers_by_their_words_and_titles_do_not_drown_the_text(
    rag_settings: Settings, collection: str, tmp_path
) -> None:
    from tests.mlstack.rag.conftest import refresh_docs, write_docs

    folder = write_docs(
        tmp_path / "docs",
        {
            "dedupe.md": "# Cleaning\n\nCall `df.drop_duplicates()` or np.random.Generator.binomial.",
            "matrix_rank.md": "# matrix_rank\n\nThe number of independent rows of a matrix.",
            "inv.md": "# inv\n\nInvert a square matrix: the matrix whose product with it is the identity.",
        },
    )
    refresh_docs(rag_settings, collection, folder)

    def first(query: str) -> str:
        return search(rag_settings, collection, query, k=3, mode="fulltext")[0].document_id

    # in the text, not the title: Postgres' parser alone keeps each identifier as one token
    assert first("drop duplicates").endswith("dedupe.md")
    assert first("binomial").endswith("dedupe.md")
    assert first("DropDuplicates").endswith("dedupe.md")  # the question's identifiers split too
    # "matrix" in a title counts no more than in the text, which says "invert" and "square" too
    assert first("invert a square matrix").endswith("inv.md")


@pytest.mark.slow
def test_full_text_drops_a_word_in_too_many_chunks_and_ranks_by_the_rest(
    rag_settings: Settings, collection: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.mlstack.rag.conftest import refresh_docs, write_docs

    # "widget" in 80 documents of 81: past both the share and the floor (50 chunks) of common words
    files = {f"w{i:02d}.md": f"# Part {i}\n\nA widget of size {i}." for i in range(80)}
    files["s.md"] = "# Gears\n\nA sprocket turns the chain."
    refresh_docs(rag_settings, collection, write_docs(tmp_path / "docs", files))

    def found(query: str) -> list[str]:
        return [
            h.document_id.rsplit("/", 1)[-1]
            for h in search(rag_settings, collection, query, k=5, mode="fulltext")
        ]

    assert found("widget sprocket") == ["s.md"], "the common word ranks nothing"
    monkeypatch.setattr(retrieve, "COMMON_SHARE", 1.0)
    monkeypatch.setattr(retrieve, "COMMON_FLOOR", 1000)
    widened = found("widget sprocket")
    assert widened[0] == "s.md" and len(widened) == 5, "no word common: the widgets are found too"


@pytest.mark.slow
def test_searches_on_one_connection_are_planned_for_their_own_values(
    rag_settings: Settings, samples: str
) -> None:
    """psycopg prepares a statement on its fifth run, and Postgres may then plan it once for any
    values: `collection = $1` cannot use the collection's partial HNSW index. Forced here, as
    Postgres may choose it, the searches must still be planned for each question's values."""
    question = "retraining cooldown after a drift alert"
    vector = local_embedder().embed([question])[0]
    with store.connect(rag_settings) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        coll = store.require_collection(conn, samples)
        for _ in range(8):
            hits = retrieve.search(
                conn, coll, question, vector, k=3, filters=retrieve.Filters(kinds=("slack",))
            )
            assert hits[0].document_id == "slack:C0MLS0002:1789466500.000200"
        plans = conn.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ("%rag_chunks%",),
        ).fetchall()
    assert len(plans) == 2, plans  # the vector and the full-text statements, each prepared
    assert all(generic == 0 and custom > 0 for generic, custom in plans), plans


def _row(document: str, score: float) -> tuple:
    # (chunk id, document, kind, title, url, path, heading, text, updated_at, similarity, score)
    return (f"{document}#0", document, "docs", document, None, None, "", "text", None, 0.5, score)


@pytest.mark.parametrize(("second_score", "first"), [(0.9, "meaning"), (0.5, "words")])
def test_full_text_counts_for_more_when_its_best_document_stands_out(second_score: float, first: str) -> None:
    # Vector search puts "meaning" first and full text "words": with full text's usual weight
    # meaning leads; when words' score stands DECISIVE_GAP above the next, words does.
    assert 1 - 0.9 < retrieve.DECISIVE_GAP <= 1 - 0.5
    ranked = {
        "vector": [_row("meaning", 0.8), _row("words", 0.7)],
        "fulltext": [_row("words", 1.0), _row("meaning", second_score)],
    }
    assert retrieve._fuse(ranked, 2)[0].document_id == first
