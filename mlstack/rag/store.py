"""The RAG store: documents and chunks in Postgres with pgvector, any DSN or the embedded server.

Tables (this domain's own migrations): collections, which record the embedding model and its
dimension (a collection never mixes models); documents, with their content hash; chunks, with
the embedding, the text, and a generated, weighted `tsvector` (title A, heading B, text D);
words, each collection's lexemes with the number of chunks holding each, which statement
triggers on chunks keep in step (full-text ranking reads them: retrieve.py).
Indexes: GIN on (collection, tsvector) for full text, and per collection an HNSW (cosine)
expression index on `embedding::vector(dim)`, since one table holds collections of different
dimensions.

Writes are per batch of documents, in one transaction: the documents upserted by id, a changed
document's chunks swapped (chunks whose content is unchanged keep their row and embedding), new
chunks loaded with binary COPY. One session-level advisory lock per collection serialises
concurrent refreshes; a killed refresh's lock goes with its connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from mlstack import postgres
from mlstack.llm.providers import ModelInfo
from mlstack.rag import RAGError
from mlstack.rag.chunking import Chunk
from mlstack.rag.sources import Document

DOMAIN = "rag"
_LOCK_CLASS = 7_420_014  # advisory lock namespace: (this, hashtext(collection))
# Candidates each HNSW insert considers (pgvector's default is 64). On the benchmark's 100k
# clustered vectors, three builds at 64 gave recall@10 0.984-0.993 (an earlier run 0.978), and
# raising hnsw.ef_search up to 600 did not lift one: the misses were the graph's. Three at 128 gave
# 1.000 plain and with filters, at the same queries/s, for 1.45x the build time (18 s against 12.5).
HNSW_EF_CONSTRUCTION = 128


def _words(column: str) -> str:
    """Identifiers split into words for full text: `DataFrame.drop_duplicates` -> Data Frame drop
    duplicates (as `chunking.words` does for embeddings)."""
    camel = f"regexp_replace({column}, '([a-z0-9])([A-Z])', '\\1 \\2', 'g')"
    return f"regexp_replace({camel}, '[^[:alnum:]]+', ' ', 'g')"


MIGRATIONS = [
    postgres.Migration(
        1,
        "RAG collections, documents, chunks and source cursors",
        f"""
        CREATE TABLE rag_collections (
            name text PRIMARY KEY,
            embedding_provider text NOT NULL,
            embedding_model text NOT NULL,
            dimension int NOT NULL CHECK (dimension > 0),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE rag_documents (
            collection text NOT NULL REFERENCES rag_collections (name) ON DELETE CASCADE,
            id text NOT NULL,
            source text NOT NULL,
            kind text NOT NULL,
            title text NOT NULL,
            url text,
            path text,
            author text,
            created_at timestamptz,
            updated_at timestamptz,
            metadata jsonb NOT NULL DEFAULT '{{}}',
            content_hash text NOT NULL,
            chunks int NOT NULL,
            refreshed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (collection, id)
        );
        CREATE INDEX rag_documents_source ON rag_documents (collection, source);
        CREATE TABLE rag_chunks (
            collection text NOT NULL,
            id text NOT NULL,
            document_id text NOT NULL,
            ord int NOT NULL,
            title text NOT NULL,
            heading text NOT NULL,
            text text NOT NULL,
            embedding vector NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english'::regconfig, {_words("title")}), 'A')
                || setweight(to_tsvector('english'::regconfig, {_words("heading")}), 'B')
                || to_tsvector('english'::regconfig, text)
            ) STORED,
            PRIMARY KEY (collection, id),
            FOREIGN KEY (collection, document_id) REFERENCES rag_documents (collection, id) ON DELETE CASCADE
        );
        CREATE INDEX rag_chunks_tsv ON rag_chunks USING gin (tsv);
        CREATE INDEX rag_chunks_document ON rag_chunks (collection, document_id);
        CREATE TABLE rag_cursors (
            collection text NOT NULL REFERENCES rag_collections (name) ON DELETE CASCADE,
            source text NOT NULL,
            cursor text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (collection, source)
        );
        CREATE TABLE rag_evaluations (
            collection text NOT NULL REFERENCES rag_collections (name) ON DELETE CASCADE,
            at timestamptz NOT NULL DEFAULT now(),
            questions text NOT NULL,
            metrics jsonb NOT NULL
        );
        """,
    ),
    postgres.Migration(
        2,
        "RAG full text: identifiers in the text split into words too, as in titles and questions",
        # Postgres' parser keeps `np.random.Generator.binomial` as one token, so a question about
        # "binomial" missed it (tests/mlstack/rag/test_retrieve.py). On the benchmark's numpy docs
        # this alone moved no figure; the field weights in retrieve.py did (MRR@10 0.49 -> 0.72).
        f"""
        DROP INDEX rag_chunks_tsv;
        ALTER TABLE rag_chunks DROP COLUMN tsv;
        ALTER TABLE rag_chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english'::regconfig, {_words("title")}), 'A')
            || setweight(to_tsvector('english'::regconfig, {_words("heading")}), 'B')
            || to_tsvector('english'::regconfig, {_words("text")})
        ) STORED;
        CREATE INDEX rag_chunks_tsv ON rag_chunks USING gin (tsv);
        """,
    ),
    postgres.Migration(
        3,
        "RAG full text: each collection's words and how many chunks hold each, kept by triggers",
        # Full-text ranking weighs a question's words by their rarity and drops the common ones
        # (retrieve.py). Counting a word's chunks at query time read up to a quarter of the
        # collection per word: on 100k chunks, the slowest questions spent half their time there.
        # Statement triggers keep the counts in the writing transaction, whoever writes (refresh,
        # COPY, cascaded deletes); a refresh's advisory lock keeps one writer per collection.
        """
        CREATE TABLE rag_words (
            collection text NOT NULL,
            word text NOT NULL,
            chunks int NOT NULL,
            PRIMARY KEY (collection, word)
        );
        CREATE FUNCTION rag_words_count() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- One upsert of each word's change, in word order: a refresh's batches write one
            -- collection at once, and rows locked in one order cannot deadlock. A chunk updated
            -- with its text unchanged (its position renumbered) changes no word and locks none.
            IF TG_OP = 'INSERT' THEN
                INSERT INTO rag_words AS w (collection, word, chunks)
                SELECT n.collection, l.lexeme, count(*)
                FROM rag_new_chunks n, unnest(n.tsv) AS l GROUP BY 1, 2 ORDER BY 1, 2
                ON CONFLICT (collection, word) DO UPDATE SET chunks = w.chunks + excluded.chunks;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO rag_words AS w (collection, word, chunks)
                SELECT o.collection, l.lexeme, -count(*)
                FROM rag_old_chunks o, unnest(o.tsv) AS l GROUP BY 1, 2 ORDER BY 1, 2
                ON CONFLICT (collection, word) DO UPDATE SET chunks = w.chunks + excluded.chunks;
            ELSE
                INSERT INTO rag_words AS w (collection, word, chunks)
                SELECT d.collection, d.lexeme, sum(d.n)
                FROM (
                    SELECT n.collection, l.lexeme, 1 AS n FROM rag_new_chunks n, unnest(n.tsv) AS l
                    UNION ALL
                    SELECT o.collection, l.lexeme, -1 FROM rag_old_chunks o, unnest(o.tsv) AS l
                ) AS d
                GROUP BY 1, 2 HAVING sum(d.n) <> 0 ORDER BY 1, 2
                ON CONFLICT (collection, word) DO UPDATE SET chunks = w.chunks + excluded.chunks;
            END IF;
            IF TG_OP <> 'INSERT' THEN  -- words just counted down to 0, whose rows this holds
                DELETE FROM rag_words w
                USING (SELECT DISTINCT o.collection, l.lexeme FROM rag_old_chunks o, unnest(o.tsv) AS l) AS g
                WHERE w.collection = g.collection AND w.word = g.lexeme AND w.chunks <= 0;
            END IF;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER rag_words_inserted AFTER INSERT ON rag_chunks
            REFERENCING NEW TABLE AS rag_new_chunks FOR EACH STATEMENT EXECUTE FUNCTION rag_words_count();
        CREATE TRIGGER rag_words_deleted AFTER DELETE ON rag_chunks
            REFERENCING OLD TABLE AS rag_old_chunks FOR EACH STATEMENT EXECUTE FUNCTION rag_words_count();
        CREATE TRIGGER rag_words_updated AFTER UPDATE ON rag_chunks
            REFERENCING OLD TABLE AS rag_old_chunks NEW TABLE AS rag_new_chunks
            FOR EACH STATEMENT EXECUTE FUNCTION rag_words_count();
        INSERT INTO rag_words (collection, word, chunks)
        SELECT c.collection, l.lexeme, count(*) FROM rag_chunks c, unnest(c.tsv) AS l GROUP BY 1, 2;
        """,
    ),
    postgres.Migration(
        4,
        "RAG full text: the GIN index on (collection, tsv), so a word's matches are one collection's",
        # On the tsvector alone, a word's matches were every collection's, each read from the
        # table to be dropped by its collection: beside a second 100k-chunk collection of like
        # text, hybrid p99 went 56 -> 150 ms; with the collection in the index, 62-74 ms.
        # btree_gin (contrib, a trusted extension) indexes the text column in GIN.
        """
        CREATE EXTENSION IF NOT EXISTS btree_gin;
        CREATE INDEX rag_chunks_collection_tsv ON rag_chunks USING gin (collection, tsv);
        DROP INDEX rag_chunks_tsv;
        """,
    ),
]


def connect(settings: Any) -> psycopg.Connection:
    """Autocommit, so each `conn.transaction()` block below is a transaction of its own."""
    conn = postgres.connect(settings, autocommit=True)
    postgres.migrate(conn, DOMAIN, MIGRATIONS)
    return conn


@dataclass(frozen=True)
class Collection:
    name: str
    provider: str
    model: str
    dimension: int

    @property
    def index(self) -> sql.Identifier:
        return sql.Identifier(f"rag_chunks_hnsw_{hashlib.sha1(self.name.encode()).hexdigest()[:16]}")

    def vector(self, column: str = "embedding") -> sql.Composed:
        """The expression the collection's HNSW index is on; queries must use it verbatim."""
        return sql.SQL("{}::vector({})").format(sql.Identifier(column), sql.Literal(self.dimension))


def collection(conn: psycopg.Connection, name: str) -> Collection | None:
    row = conn.execute(
        "SELECT name, embedding_provider, embedding_model, dimension FROM rag_collections WHERE name = %s",
        (name,),
    ).fetchone()
    return Collection(*row) if row else None


def ensure_collection(conn: psycopg.Connection, name: str, info: ModelInfo) -> Collection:
    """The collection, created for this embedding model on first use; refused for another model."""
    assert info.dimension is not None
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS + 1, name))
        found = collection(conn, name)
        if found is None:
            conn.execute(
                "INSERT INTO rag_collections (name, embedding_provider, embedding_model, dimension)"
                " VALUES (%s, %s, %s, %s)",
                (name, info.provider, info.model, info.dimension),
            )
            found = Collection(name, info.provider, info.model, info.dimension)
            create_index(conn, found)
    if (found.model, found.dimension) != (info.model, info.dimension):
        raise RAGError(
            f"collection {name!r} holds {found.dimension}-dimensional vectors of {found.model} and"
            f" this embedder is {info.model} ({info.dimension}); mixing them would make every search"
            f" meaningless. Use another --collection, or `mlstack rag drop {name}` and refresh again."
        )
    return found


def create_index(conn: psycopg.Connection, coll: Collection) -> None:
    """The collection's HNSW index. Built with the collection, so every insert keeps it current;
    a bulk load into an empty collection may drop it and build it once afterwards (faster)."""
    # DDL takes no bind parameters: the name goes in as a quoted literal.
    conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON rag_chunks USING hnsw (({}) vector_cosine_ops)"
            " WITH (ef_construction = {}) WHERE collection = {}"
        ).format(coll.index, coll.vector(), sql.Literal(HNSW_EF_CONSTRUCTION), sql.Literal(coll.name))
    )


def drop_index(conn: psycopg.Connection, coll: Collection) -> None:
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(coll.index))


def update_statistics(conn: psycopg.Connection, written: int) -> bool:
    """After `written` chunks landed: the planner's statistics renewed now (ANALYZE), when
    autovacuum's own rule (more than 50 + 10% of the table's rows changed) says they are stale,
    rather than at autovacuum's next round, a minute or more later. Until then a new collection
    looks empty to the planner, and searches skip its HNSW index for an exact scan: right after a
    100k-chunk load, 4 searches/s where the index then gave 333 (ANALYZE took 0.4 s)."""
    rows = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'rag_chunks'::regclass").fetchone()[0]
    if rows >= 0 and written <= 50 + 0.1 * rows:  # -1: never analysed
        return False
    conn.execute("ANALYZE rag_documents, rag_chunks, rag_words")
    return True


def require_collection(conn: psycopg.Connection, name: str) -> Collection:
    found = collection(conn, name)
    if found is None:
        raise RAGError(f"collection {name!r} is empty: run `mlstack rag refresh --collection {name}` first")
    return found


def drop(settings: Any, name: str, waiting: Callable[[], None] | None = None) -> bool:
    """Delete a collection under its refresh lock: a drop in the middle of a refresh waits for
    it (it broke the refresh with foreign-key violations); False when there is none."""
    with refresh_lock(settings, name, waiting), connect(settings) as conn:
        return drop_collection(conn, name)


def drop_sources(
    settings: Any, name: str, dropped: Sequence[str], waiting: Callable[[], None] | None = None
) -> dict[str, int]:
    """Delete the documents (with their chunks) and cursors of some of a collection's sources,
    under its refresh lock; what each source had."""
    with refresh_lock(settings, name, waiting), connect(settings) as conn:
        return delete_sources(conn, name, dropped)


def delete_sources(conn: psycopg.Connection, name: str, dropped: Sequence[str]) -> dict[str, int]:
    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM rag_documents WHERE collection = %s AND source = ANY(%s) RETURNING source",
            (name, list(dropped)),
        ).fetchall()
        conn.execute(
            "DELETE FROM rag_cursors WHERE collection = %s AND source = ANY(%s)", (name, list(dropped))
        )
    counted = dict.fromkeys(dropped, 0)
    for (source,) in rows:
        counted[source] += 1
    return counted


def sources(conn: psycopg.Connection, name: str) -> dict[str, int]:
    """The collection's sources, with how many documents each has."""
    rows = conn.execute(
        "SELECT source, count(*) FROM rag_documents WHERE collection = %s GROUP BY source ORDER BY source",
        (name,),
    )
    return dict(rows.fetchall())


def drop_collection(conn: psycopg.Connection, name: str) -> bool:
    found = collection(conn, name)
    if found is None:
        return False
    with conn.transaction():
        drop_index(conn, found)
        conn.execute("DELETE FROM rag_chunks WHERE collection = %s", (name,))
        conn.execute("DELETE FROM rag_collections WHERE name = %s", (name,))
    return True


@contextmanager
def refresh_lock(settings: Any, name: str, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the collection's refresh lock for the block; a second refresh (or a drop) waits its
    turn, after calling `waiting` when it has to."""
    with postgres.connect(settings, autocommit=True) as conn:
        held = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, name)).fetchone()[
            0
        ]
        if not held:
            if waiting is not None:
                waiting()
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, name))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_LOCK_CLASS, name))


def hashes(conn: psycopg.Connection, name: str, ids: Sequence[str]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT id, content_hash FROM rag_documents WHERE collection = %s AND id = ANY(%s)", (name, list(ids))
    )
    return dict(rows.fetchall())


def stored_chunk_ids(conn: psycopg.Connection, name: str, document_ids: Sequence[str]) -> set[str]:
    rows = conn.execute(
        "SELECT id FROM rag_chunks WHERE collection = %s AND document_id = ANY(%s)",
        (name, list(document_ids)),
    )
    return {row[0] for row in rows}


_DOCUMENT_COLUMNS = (
    "collection, id, source, kind, title, url, path, author, created_at, updated_at, metadata,"
    " content_hash, chunks"
)


def write(
    conn: psycopg.Connection,
    name: str,
    source: str,
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    new_vectors: dict[str, np.ndarray],
) -> int:
    """Write documents and their chunks in one transaction; returns the chunks loaded.

    `chunks` is every chunk of these documents now; `new_vectors` holds the embeddings of those
    not stored yet. Stored chunks the documents no longer have are deleted.
    """
    ids = [d.id for d in documents]
    keep = [c.id for c in chunks]
    per_document = {d.id: 0 for d in documents}
    for c in chunks:
        per_document[c.document_id] += 1
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE rag_incoming (LIKE rag_documents INCLUDING DEFAULTS) ON COMMIT DROP")
        with cur.copy(f"COPY rag_incoming ({_DOCUMENT_COLUMNS}) FROM STDIN") as copy:
            for d in documents:
                copy.write_row(
                    (
                        name,
                        d.id,
                        source,
                        d.kind,
                        d.title,
                        d.url,
                        d.path,
                        d.author,
                        d.created_at,
                        d.updated_at,
                        Jsonb(d.metadata),
                        d.hash,
                        per_document[d.id],
                    )
                )
        updates = ", ".join(
            f"{column} = excluded.{column}" for column in _DOCUMENT_COLUMNS.replace(" ", "").split(",")[2:]
        )
        cur.execute(
            f"INSERT INTO rag_documents ({_DOCUMENT_COLUMNS}) SELECT {_DOCUMENT_COLUMNS} FROM rag_incoming"
            f" ON CONFLICT (collection, id) DO UPDATE SET {updates}, refreshed_at = now()"
        )
        cur.execute(
            "DELETE FROM rag_chunks WHERE collection = %s AND document_id = ANY(%s) AND NOT (id = ANY(%s))",
            (name, ids, keep),
        )
        fresh = [c for c in chunks if c.id in new_vectors]
        with cur.copy(
            "COPY rag_chunks (collection, id, document_id, ord, title, heading, text, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "text", "int4", "text", "text", "text", "vector"])
            for c in fresh:
                copy.write_row(
                    (name, c.id, c.document_id, c.ord, c.title, c.heading, c.text, new_vectors[c.id])
                )
        # Kept chunks may have moved within their document.
        cur.executemany(
            "UPDATE rag_chunks SET ord = %s WHERE collection = %s AND id = %s AND ord <> %s",
            [(c.ord, name, c.id, c.ord) for c in chunks if c.id not in new_vectors],
        )
    return len(fresh)


def prune(conn: psycopg.Connection, name: str, source: str, present: Sequence[str]) -> list[str]:
    """Delete the documents (and chunks) of `source` that the source no longer has."""
    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM rag_documents WHERE collection = %s AND source = %s AND NOT (id = ANY(%s))"
            " RETURNING id",
            (name, source, list(present)),
        ).fetchall()
    return sorted(row[0] for row in rows)


def delete_documents(conn: psycopg.Connection, name: str, ids: Sequence[str]) -> list[str]:
    """Delete these documents (and their chunks): ones their source says are gone."""
    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM rag_documents WHERE collection = %s AND id = ANY(%s) RETURNING id", (name, list(ids))
        ).fetchall()
    return sorted(row[0] for row in rows)


def cursor(conn: psycopg.Connection, name: str, source: str) -> str | None:
    row = conn.execute(
        "SELECT cursor FROM rag_cursors WHERE collection = %s AND source = %s", (name, source)
    ).fetchone()
    return row[0] if row else None


def save_cursor(conn: psycopg.Connection, name: str, source: str, value: str) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO rag_cursors (collection, source, cursor) VALUES (%s, %s, %s)"
            " ON CONFLICT (collection, source) DO UPDATE SET cursor = excluded.cursor, updated_at = now()",
            (name, source, value),
        )


def counts(conn: psycopg.Connection, name: str) -> dict[str, int]:
    documents, chunks = conn.execute(
        "SELECT (SELECT count(*) FROM rag_documents WHERE collection = %s),"
        " (SELECT count(*) FROM rag_chunks WHERE collection = %s)",
        (name, name),
    ).fetchone()
    return {"documents": documents, "chunks": chunks}


def record_evaluation(conn: psycopg.Connection, name: str, questions: str, metrics: dict[str, Any]) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO rag_evaluations (collection, questions, metrics) VALUES (%s, %s, %s)",
            (name, questions, Jsonb(metrics)),
        )


def last_evaluation(conn: psycopg.Connection, name: str, questions: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT metrics FROM rag_evaluations WHERE collection = %s AND questions = %s"
        " ORDER BY at DESC LIMIT 1",
        (name, questions),
    ).fetchone()
    return row[0] if row else None


def document_names(conn: psycopg.Connection, name: str) -> set[str]:
    """Every id, path and URL of a collection's documents: what a question file's `expected`
    may name."""
    rows = conn.execute("SELECT id, path, url FROM rag_documents WHERE collection = %s", (name,)).fetchall()
    return {value for row in rows for value in row if value}
