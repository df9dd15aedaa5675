"""Search a collection: by meaning (pgvector HNSW, cosine), by words (Postgres full text), or
both fused with reciprocal rank fusion. Hits are ranked per document, each with its best chunk.

Full text turns the question's words into an OR query: identifiers are split into words as the
indexed text's are (`drop_duplicates` -> drop duplicates), `websearch_to_tsquery` parses the rest
(quotes, `-word`), and its ANDs become ORs, since a question in plain words rarely holds every
word of the document that answers it; `ts_rank` then prefers chunks with more of them, each
word weighted by its rarity, a word in the title or heading no more than one in the text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from psycopg import sql

from mlstack.errors import InputError
from mlstack.rag import chunking, store
from mlstack.rag.store import Collection

Mode = Literal["vector", "fulltext", "hybrid"]
MODES: tuple[Mode, ...] = ("vector", "fulltext", "hybrid")
POOL = 50  # chunks each mode hands to fusion
# HNSW candidates per query. On the benchmark's 100k clustered vectors (benchmarks/rag.py), 200
# to 600 gave the same recall@10 on two builds, 100 up to 0.006 less: past 200 the index's graph
# bounds recall (store.HNSW_EF_CONSTRUCTION), and 600 halves queries/s.
EF_SEARCH = 200
# Tuned on the development set only (benchmarks/data/dev_questions.jsonl), never on the held-out
# test set, each question embedded alone as a search embeds it. On its pandas questions
# (paraphrases of DataFrame docstrings) k = 60, the usual constant, was 0.07 below k = 5. With 32
# questions on scipy.optimize, where words shared with the document are a strong signal (full text
# alone 0.85, vector 0.81), the objective is the mean of the two parts' MRR@10, and a setting
# replaces the one before it only for a gain over 0.01 (both decided before the runs): fulltext
# weights 0.2-1.0 x k 5-60 put 0.5 and 5 first, 0.808 against 0.791 for the earlier 0.3 and 5; a
# convex combination of min-max scaled scores (Bruch et al. 2023) was lower.
WEIGHTS = {"vector": 1.0, "fulltext": 0.5}
RRF_K = 5
# When full text's best document stands out, its score at least DECISIVE_GAP (relative) above the
# second's, the question named something few documents hold ("Rosenbrock", "Wolfe"), and full text
# counts as much as DECISIVE_FULLTEXT: 0.808 -> 0.819 by the same rule (pandas unchanged, scipy
# 0.865 -> 0.885), the best of weights 0.7-3.0 x gaps 0.1-0.5 (3.0 tied); the median gap is 0.06
# on pandas' questions and 0.17 on scipy's.
DECISIVE_GAP = 0.4
DECISIVE_FULLTEXT = 1.5


@dataclass(frozen=True)
class Filters:
    kinds: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[sql.Composable, dict[str, Any]]:
        parts: list[sql.Composable] = []
        if self.kinds:
            parts.append(sql.SQL(" AND d.kind = ANY(%(kinds)s)"))
        if self.since:
            parts.append(sql.SQL(" AND d.updated_at >= %(since)s"))
        if self.until:
            parts.append(sql.SQL(" AND d.updated_at < %(until)s"))
        return sql.Composed(parts), {"kinds": list(self.kinds), "since": self.since, "until": self.until}


@dataclass(frozen=True)
class Hit:
    document_id: str
    kind: str
    title: str
    url: str | None
    path: str | None
    score: float
    similarity: float  # cosine of the best chunk to the question, whatever the mode
    chunk_id: str
    heading: str
    text: str
    updated_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Full text, ranked with each query word weighted by its rarity in the collection (BM25's IDF,
# which stays positive): Postgres' ts_rank alone counts a word like "rows" as much as
# "duplicates". Words in more than COMMON_SHARE of the chunks are dropped, as stop words; never a
# word in COMMON_FLOOR chunks or fewer, or a small collection's every word would be "common".
# Each word's chunk count comes from `rag_words`, which triggers keep as chunks are written
# (store.py, migration 3), so only the kept words' chunks are read, and once. Counting them at
# query time read up to a quarter of the collection per common word: on benchmarks/rag.py's 100k
# chunks and 200 questions, hybrid p99 went 89 -> 55 ms (warm cache, same results for all 200);
# the slowest question had spent 48 of its 137 ms counting. Only the top `limit` are joined for
# their text and similarity. Each step is MATERIALIZED: inlined, the planner once ran the
# frequency counts for every chunk of the collection (256k counts, 53 s for one question over
# 564 chunks) instead of once per word.
COMMON_SHARE = 0.25
COMMON_FLOOR = 50
# Grouping a question's matches by chunk: with Postgres' default (4MB), a question matching 30k
# of 100k chunks spilled it to disk (7 MB), a fifth of its time. The grouped rows are kept
# narrow (id, document, score), not each chunk's tsvector, for the same reason.
WORK_MEM = "32MB"
# ts_rank's weight of a word found in the text (D), -, the heading (B) and the title (A). Its
# default, {0.1, 0.2, 0.4, 1.0}, counts a title word ten times a text word: every question with
# "matrix" in it then ranked `matrix_rank` and `matrix_power` first. On the development set
# (full text's MRR@10): default 0.37, A twice the rest 0.50, all equal 0.51, which BM25 gets too.
FIELD_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
_FULLTEXT = """
WITH total AS MATERIALIZED (
    SELECT coalesce(sum(chunks), 0)::float AS n FROM rag_documents WHERE collection = %(collection)s
),
words AS MATERIALIZED (
    SELECT DISTINCT m[1] AS word, quote_literal(m[1])::tsquery AS q
    FROM regexp_matches(websearch_to_tsquery('english', %(query)s)::text, '''([^'']+)''', 'g') AS m
),
weighted AS MATERIALIZED (
    SELECT w.q, ln(1 + (total.n - s.chunks + 0.5) / (s.chunks + 0.5)) AS idf
    FROM words w JOIN rag_words s ON s.collection = %(collection)s AND s.word = w.word, total
    WHERE s.chunks <= floor(greatest(total.n * %(common)s, %(common_floor)s))
),
scored AS MATERIALIZED (
    SELECT r.id, r.document_id, sum(r.score) AS score
    FROM (
        SELECT c.id, c.document_id, w.idf * ts_rank(%(weights)s::float4[], c.tsv, w.q, 1) AS score
        FROM weighted w JOIN rag_chunks c ON c.tsv @@ w.q
        WHERE c.collection = %(collection)s
    ) AS r
    GROUP BY r.id, r.document_id
),
top AS MATERIALIZED (
    SELECT s.id, s.score
    FROM scored s JOIN rag_documents d ON d.collection = %(collection)s AND d.id = s.document_id
    WHERE true {filters}
    ORDER BY s.score DESC, s.id LIMIT %(limit)s
)
SELECT c.id, c.document_id, d.kind, d.title, d.url, d.path, c.heading, c.text, d.updated_at,
       1 - ({vec} <=> %(vector)s::vector({dim})) AS similarity, t.score
FROM top t
JOIN rag_chunks c ON c.collection = %(collection)s AND c.id = t.id
JOIN rag_documents d ON d.collection = c.collection AND d.id = c.document_id
ORDER BY t.score DESC, c.id
"""
_VECTOR = """
SELECT c.id, c.document_id, d.kind, d.title, d.url, d.path, c.heading, c.text, d.updated_at,
       1 - ({vec} <=> %(vector)s::vector({dim})) AS similarity,
       1 - ({vec} <=> %(vector)s::vector({dim})) AS score
FROM rag_chunks c JOIN rag_documents d ON d.collection = c.collection AND d.id = c.document_id
WHERE c.collection = %(collection)s {filters}
ORDER BY {vec} <=> %(vector)s::vector({dim}) LIMIT %(limit)s
"""


def search_settings(conn: Any, limit: int = 10) -> None:
    """What a search's transaction runs with (SET LOCAL: for that transaction only)."""
    # Filtered HNSW scans go on until they find `limit` rows (pgvector 0.8).
    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(EF_SEARCH, limit))))
    conn.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(WORK_MEM)))
    # psycopg prepares a statement on its fifth run on one connection, and Postgres may then
    # plan it once for any parameters: `collection = $1` cannot use a collection's HNSW index
    # (partial, `WHERE collection = 'name'`), so every search became an exact scan. On the
    # benchmark's 100k chunks, filtered: 27 queries/s so, 230 planned for each question's values.
    conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


def _chunks(
    conn: Any, coll: Collection, mode: str, query: str, vector: np.ndarray, filters: Filters, limit: int
) -> list[tuple]:
    where, params = filters.where()
    statement = sql.SQL(_VECTOR if mode == "vector" else _FULLTEXT).format(
        vec=coll.vector("embedding"), dim=sql.Literal(coll.dimension), filters=where
    )
    # identifiers split as the indexed text's are (store._words): `drop_duplicates` -> drop duplicates
    words = chunking.words(query)
    args = {
        "collection": coll.name,
        "query": words,
        "vector": vector,
        "limit": limit,
        "common": COMMON_SHARE,
        "common_floor": COMMON_FLOOR,
        "weights": [weight / max(FIELD_WEIGHTS) for weight in FIELD_WEIGHTS],  # ts_rank takes 0-1
    }
    with conn.transaction():
        search_settings(conn, limit)
        rows = conn.execute(statement, {**args, **params}).fetchall()
    if mode == "vector":  # relaxed order: sort the few rows exactly
        rows.sort(key=lambda row: -row[10])
    return rows


def _hit(row: tuple, score: float) -> Hit:
    chunk_id, document_id, kind, title, url, path, heading, text, updated_at, similarity, _ = row
    return Hit(
        document_id,
        kind,
        title,
        url,
        path,
        float(score),
        float(similarity),
        chunk_id,
        heading,
        text,
        updated_at,
    )


def _per_document(rows: list[tuple]) -> list[tuple]:
    """Each document's best chunk, in rank order."""
    best: dict[str, tuple] = {}
    for row in rows:
        best.setdefault(row[1], row)
    return list(best.values())


def search(
    conn: Any,
    coll: Collection,
    query: str,
    vector: np.ndarray,
    k: int = 5,
    mode: Mode = "hybrid",
    filters: Filters | None = None,
) -> list[Hit]:
    parts = ("vector", "fulltext") if mode == "hybrid" else (mode,)
    return search_modes(conn, coll, query, vector, k, parts, filters)[mode]


def find(
    settings: Any,
    embedder: Any,
    collection: str,
    question: str,
    k: int,
    mode: Mode = "hybrid",
    filters: Filters | None = None,
) -> list[Hit]:
    """The one retrieval path of `rag search`, `rag ask` and the evaluation: the question embedded,
    the collection searched on a connection of its own (the evaluation calls from many threads)."""
    if not question.strip():  # no words: the ranking would be arbitrary, not an answer
        raise InputError("the question is empty: ask in words, as in `mlstack rag search 'drift alert'`")
    with store.connect(settings) as conn:
        coll = store.require_collection(conn, collection)
        return search(conn, coll, question, embedder.embed([question])[0], k, mode, filters)


def search_modes(
    conn: Any,
    coll: Collection,
    query: str,
    vector: np.ndarray,
    k: int = 5,
    parts: tuple[str, ...] = ("vector", "fulltext"),
    filters: Filters | None = None,
) -> dict[str, list[Hit]]:
    """The hits of each base mode in `parts`, and of hybrid when both are there: one query per
    base mode, which fusion reuses (evaluation asks for all three)."""
    filters = filters or Filters()
    pool = max(POOL, k * 4)
    ranked = {part: _per_document(_chunks(conn, coll, part, query, vector, filters, pool)) for part in parts}
    found = {part: [_hit(row, row[10]) for row in rows[:k]] for part, rows in ranked.items()}
    if set(WEIGHTS) <= set(ranked):
        found["hybrid"] = _fuse(ranked, k)
    return found


def _weights(ranked: dict[str, list[tuple]]) -> dict[str, float]:
    rows = ranked["fulltext"]
    if rows and (len(rows) == 1 or (rows[0][10] - rows[1][10]) >= DECISIVE_GAP * rows[0][10]):
        return WEIGHTS | {"fulltext": DECISIVE_FULLTEXT}
    return WEIGHTS


def _fuse(ranked: dict[str, list[tuple]], k: int) -> list[Hit]:
    fused: dict[str, float] = {}
    shown: dict[str, tuple] = {}
    for part, weight in _weights(ranked).items():
        for rank, row in enumerate(ranked[part], 1):
            fused[row[1]] = fused.get(row[1], 0.0) + weight / (RRF_K + rank)
            if row[1] not in shown or row[9] > shown[row[1]][9]:
                shown[row[1]] = row  # the chunk closest in meaning represents the document
    order = sorted(fused, key=lambda doc: (-fused[doc], doc))[:k]
    return [_hit(shown[doc], fused[doc]) for doc in order]
