"""The store on the real embedded pgvector: idempotent refreshes, edits, deletions, one model per
collection, and concurrent refreshes taking turns."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mlstack.llm.embeddings import local_embedder
from mlstack.llm.providers import ModelInfo
from mlstack.rag import RAGError, store
from mlstack.settings import Settings
from tests.mlstack.rag.conftest import refresh_docs, write_docs


def chunks(settings: Settings, name: str) -> dict[str, set[str]]:
    with store.connect(settings) as conn:
        rows = conn.execute(
            "SELECT d.path, c.text FROM rag_chunks c JOIN rag_documents d"
            " ON (d.collection, d.id) = (c.collection, c.document_id) WHERE c.collection = %s",
            (name,),
        )
        found: dict[str, set[str]] = {}
        for path, text in rows:
            found.setdefault(path, set()).add(text)
        return found


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_docs(
        tmp_path / "docs",
        {
            "a.md": "# Alpha\n\nAlpha explains caching.\n\n## More\n\nDetails on eviction.",
            "b.md": "# Beta\n\nBeta explains retries.",
            "c.txt": "Gamma is a plain text note about logging.",
        },
    )


@pytest.mark.slow
def test_an_unchanged_refresh_writes_nothing(rag_settings: Settings, collection: str, folder: Path) -> None:
    first = refresh_docs(rag_settings, collection, folder)
    assert first["added"] == 3 and first["embedded"] >= 3
    with store.connect(rag_settings) as conn:
        before = conn.execute(
            "SELECT max(refreshed_at) FROM rag_documents WHERE collection = %s", (collection,)
        ).fetchone()
    assert refresh_docs(rag_settings, collection, folder) == {
        "added": 0,
        "changed": 0,
        "unchanged": 3,
        "deleted": 0,
        "embedded": 0,
    }
    with store.connect(rag_settings) as conn:
        after = conn.execute(
            "SELECT max(refreshed_at) FROM rag_documents WHERE collection = %s", (collection,)
        ).fetchone()
    assert before == after


@pytest.mark.slow
def test_an_edited_document_loses_its_old_chunks(
    rag_settings: Settings, collection: str, folder: Path
) -> None:
    refresh_docs(rag_settings, collection, folder)
    (folder / "b.md").write_text("# Beta\n\nBeta now explains backoff.")
    counts = refresh_docs(rag_settings, collection, folder)
    assert (counts["changed"], counts["unchanged"], counts["embedded"]) == (1, 2, 1)
    texts = chunks(rag_settings, collection)["b.md"]
    assert any("backoff" in t for t in texts) and not any("retries" in t for t in texts)


@pytest.mark.slow
def test_a_deleted_document_loses_its_chunks(rag_settings: Settings, collection: str, folder: Path) -> None:
    refresh_docs(rag_settings, collection, folder)
    (folder / "c.txt").unlink()
    assert refresh_docs(rag_settings, collection, folder)["deleted"] == 1
    assert set(chunks(rag_settings, collection)) == {"a.md", "b.md"}


def word_counts(settings: Settings, name: str) -> tuple[dict[str, int], dict[str, int]]:
    """The counts full-text ranking reads (`rag_words`), and the same counted from the chunks."""
    with store.connect(settings) as conn:
        kept = dict(conn.execute("SELECT word, chunks FROM rag_words WHERE collection = %s", (name,)))
        recount = dict(
            conn.execute(
                "SELECT l.lexeme, count(*) FROM rag_chunks c, unnest(c.tsv) AS l"
                " WHERE c.collection = %s GROUP BY 1",
                (name,),
            )
        )
    return kept, recount


@pytest.mark.slow
def test_word_counts_follow_every_write(rag_settings: Settings, collection: str, folder: Path) -> None:
    """Refreshes, edits, deletions, a dropped source and a dropped collection each leave the
    words' chunk counts equal to a recount of the chunks."""
    refresh_docs(rag_settings, collection, folder)
    kept, recount = word_counts(rag_settings, collection)
    assert kept == recount and recount["explain"] == 2  # alpha's and beta's
    (folder / "b.md").write_text("# Beta\n\nBeta now covers backoff.")
    (folder / "c.txt").unlink()
    refresh_docs(rag_settings, collection, folder)
    kept, recount = word_counts(rag_settings, collection)
    assert kept == recount and kept["explain"] == 1 and "retri" not in kept and "log" not in kept
    with store.connect(rag_settings) as conn:
        conn.execute(
            "UPDATE rag_chunks SET text = text || ' sprocket' WHERE collection = %s AND text LIKE %s",
            (collection, "%eviction%"),
        )
    kept, recount = word_counts(rag_settings, collection)
    assert kept == recount and kept["sprocket"] == 1
    with store.connect(rag_settings) as conn:  # as a refresh renumbers unchanged chunks
        conn.execute("UPDATE rag_chunks SET ord = ord + 1 WHERE collection = %s", (collection,))
    assert word_counts(rag_settings, collection)[0] == kept
    store.drop_sources(rag_settings, collection, [f"docs:{folder.resolve()}"])
    assert word_counts(rag_settings, collection) == ({}, {})
    refresh_docs(rag_settings, collection, folder)
    with store.connect(rag_settings) as conn:
        store.drop_collection(conn, collection)
        assert conn.execute(
            "SELECT count(*) FROM rag_words WHERE collection = %s", (collection,)
        ).fetchone() == (0,)


@pytest.mark.slow
def test_the_planners_statistics_are_renewed_after_a_large_write_only(rag_settings: Settings) -> None:
    """A new collection looks empty to the planner until ANALYZE: searches then skip its index."""

    def analysed(conn) -> object:
        return conn.execute(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'rag_chunks'"
        ).fetchone()[0]

    def rows(conn) -> float:  # the planner's row count; -1 until the table is first analysed
        return conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'rag_chunks'::regclass").fetchone()[0]

    with store.connect(rag_settings) as conn:
        if rows(conn) < 0:  # never analysed: any write renews them, and then the rule below applies
            assert store.update_statistics(conn, 1)
        before = analysed(conn)
        small = int(50 + 0.1 * rows(conn))
        assert not store.update_statistics(conn, small)
        assert analysed(conn) == before
        assert store.update_statistics(conn, small + 1)
        assert analysed(conn) is not None and (before is None or analysed(conn) > before)


@pytest.mark.slow
def test_a_moved_folder_is_a_new_source_and_the_old_one_is_dropped_by_name(
    rag_settings: Settings, collection: str, folder: Path, tmp_path: Path
) -> None:
    """The old documents stayed searchable for ever: nothing could name them to delete them."""
    twin = write_docs(tmp_path / "twin", {"a.md": "# Alpha twin\n\nA different a.md."})
    refresh_docs(rag_settings, collection, folder)
    refresh_docs(rag_settings, collection, twin)
    moved = folder.rename(tmp_path / "moved")
    assert refresh_docs(rag_settings, collection, moved)["added"] == 3
    with store.connect(rag_settings) as conn:
        held = store.sources(conn, collection)
    old, new, other = f"docs:{folder.resolve()}", f"docs:{moved.resolve()}", f"docs:{twin.resolve()}"
    assert held == {old: 3, new: 3, other: 1}  # both a.md files kept, neither overwritten
    assert store.drop_sources(rag_settings, collection, [old, "docs:/never/there"]) == {
        old: 3,
        "docs:/never/there": 0,
    }
    with store.connect(rag_settings) as conn:
        assert store.sources(conn, collection) == {new: 3, other: 1}
        assert conn.execute(
            "SELECT count(*) FROM rag_chunks c WHERE collection = %s AND NOT EXISTS"
            " (SELECT 1 FROM rag_documents d WHERE (d.collection, d.id) = (c.collection, c.document_id))",
            (collection,),
        ).fetchone() == (0,)


@pytest.mark.slow
def test_a_collection_refuses_another_embedding_model(rag_settings: Settings, collection: str) -> None:
    with store.connect(rag_settings) as conn:
        store.ensure_collection(conn, collection, ModelInfo("local", "all-MiniLM-L6-v2", 384))
        with pytest.raises(RAGError, match="text-embedding-3-small"):
            store.ensure_collection(conn, collection, ModelInfo("openai", "text-embedding-3-small", 1536))


@pytest.mark.slow
def test_each_collection_has_its_own_hnsw_index_and_search_uses_it(
    rag_settings: Settings, collection: str, folder: Path
) -> None:
    refresh_docs(rag_settings, collection, folder)
    with store.connect(rag_settings) as conn:
        coll = store.require_collection(conn, collection)
        # A tiny collection is cheaper to sort than to search: forbid the sort, so the plan shows
        # whether the partial expression index can serve the query at all.
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_sort = off")
        vector = local_embedder().embed(["caching"])[0]
        from psycopg import sql

        plan = conn.execute(
            sql.SQL(
                "EXPLAIN SELECT id FROM rag_chunks WHERE collection = %s"
                " ORDER BY {} <=> %s::vector(384) LIMIT 5"
            ).format(coll.vector()),
            (collection, vector),
        ).fetchall()
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", (coll.index.as_string(None).strip('"'),)
        ).fetchone()[0]
    assert coll.index.as_string(None).strip('"') in " ".join(row[0] for row in plan)
    assert options == [f"ef_construction={store.HNSW_EF_CONSTRUCTION}"]  # built for recall: see store


@pytest.mark.slow
def test_concurrent_refreshes_take_turns(rag_settings: Settings, collection: str, folder: Path) -> None:
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def refresh_once() -> None:
        try:
            with store.refresh_lock(rag_settings, collection):
                results.append(refresh_docs(rag_settings, collection, folder))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=refresh_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r["added"] for r in results) == [0, 3]  # the second saw the first's work
    with store.connect(rag_settings) as conn:
        assert store.counts(conn, collection)["documents"] == 3
        duplicates = conn.execute(
            "SELECT count(*) - count(DISTINCT (document_id, text)) FROM rag_chunks WHERE collection = %s",
            (collection,),
        ).fetchone()[0]
    assert duplicates == 0


@pytest.mark.slow
def test_a_drop_waits_for_the_refresh_that_holds_the_collection(
    rag_settings: Settings, collection: str, folder: Path
) -> None:
    """`rag drop` took no lock: a refresh in progress died with foreign-key violations."""
    refresh_docs(rag_settings, collection, folder)
    waited = threading.Event()
    dropped: list[bool] = []
    with store.refresh_lock(rag_settings, collection):  # a refresh in progress
        drop = threading.Thread(
            target=lambda: dropped.append(store.drop(rag_settings, collection, waited.set))
        )
        drop.start()
        assert waited.wait(30), "the drop did not see the refresh's lock"
        drop.join(1)
        assert drop.is_alive() and chunks(rag_settings, collection), "it dropped under the refresh"
    drop.join(30)
    assert dropped == [True] and chunks(rag_settings, collection) == {}
    assert store.drop(rag_settings, collection) is False  # nothing left to drop
