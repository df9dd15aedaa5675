"""RAG, side by side with the obvious way, in one run: ingest, re-refresh, the HNSW index, and
embedding throughput. The last line is JSON.

    python benchmarks/rag.py [--docs 80] [--vectors 100000] [--queries 200]

- ingest: chunks embedded in one call, a text per core at once, and loaded with COPY (the
  project's refresh) vs each chunk embedded by a call of its own and inserted row by row, on the
  same corpus (pandas' DataFrame docstrings, real text on this machine).
- store: the writes alone (embeddings computed beforehand): COPY vs a row INSERT per chunk.
- refresh: an unchanged re-refresh vs the first refresh of that corpus; and both against
  LangChain on the same documents, chunks, embedder and Postgres: the first refresh vs
  `PGVector.add_documents` (langchain-postgres), the unchanged re-refresh vs an unchanged run of
  its indexing API (`index()` with a `SQLRecordManager`, incremental cleanup); and the same
  chunks embedded alone, which both sides must spend: LangChain's time over it is the most that
  any ingest through this embedder could be ahead. Then LangChain as its documentation sets up
  this model (`HuggingFaceEmbeddings`: sentence-transformers on torch) into `add_documents`: the
  first refresh against what a user of LangChain's stack would run.
- index: the collection's HNSW index vs an exact scan of the same query, on synthetic clustered
  384-dimensional vectors: recall@10 against the exact answer, and queries per second. On the
  same 100k chunks (40 words of text each, three kinds, a year of dates), in a table holding the
  other collections: the project's hybrid retrieval's p50 and p99, and a kind + date filtered
  top-10 by pgvector 0.8's iterative scan, its recall and queries/s against the exact scan.
- ask: `rag ask --extractive` in process (embed, search, quote) on the held-out set, p50 and p99;
  the same with the local model generating (the untrained stand-in of a fresh data dir, through
  the local OpenAI-compatible server, up to the flow's 400 tokens); and `mlstack rag ask
  --extractive` as a fresh process on the warm process, wall time.
- embed: chunks/s of the project's embedder (ONNX Runtime, int8, by default) vs
  `SentenceTransformer.encode` with its defaults, on the same chunks and model, the cosine between
  their two embeddings of each chunk, and the held-out set's hit@5 and MRR@10 with each.
- quality: hit@1, hit@5 and MRR@10 per mode, with 95% bootstrap intervals, against BM25 over
  the same chunks (`bm25s`, English stop words) and LangChain's `EnsembleRetriever` (that BM25
  and the vector search, equal weights, its RRF), on two question sets: the development set, which
  the fusion constants and chunk size were tuned on (paraphrased questions over the same pandas
  corpus, and questions on scipy's optimizers that re-checked the fusion constants,
  benchmarks/data/dev_questions.jsonl), and a held-out test set no constant was tuned on (numpy's
  random-generator and linear-algebra docstrings and scikit-learn's metrics,
  benchmarks/data/held_out_questions.jsonl; the scikit-learn questions were written and committed
  before any run scored them).
  Both hold unanswerable questions: the rate of "I don't know" on them, and on the answerable
  ones (false refusals), at the answer's similarity gate.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import console, own_home, percentile, report, scratch

HERE = Path(__file__).resolve().parent


def corpus(count: int, folder: Path) -> Path:
    from rag_corpus import members

    folder.mkdir(parents=True, exist_ok=True)
    for qualified, doc in members("pandas:DataFrame")[:count]:
        (folder / f"{qualified}.md").write_text(f"# {qualified}\n\n{doc}\n")
    return folder


def chunked(settings, folder: Path) -> list[tuple]:
    """A docs folder read and cut as the refresh cuts it: (document, chunk) pairs, in order."""
    from mlstack.rag import chunking, sources

    read = sources.read(sources.parse_spec(f"docs:{folder}"), settings)
    return [
        (d, c)
        for d in read.documents
        for c in chunking.chunk(d, settings.rag.chunk_size, settings.rag.chunk_overlap)
    ]


def refresh_once(settings, name: str, folder: Path) -> dict[str, int]:
    from mlstack.rag import defaults, refresh, sources, store

    read = sources.read(sources.parse_spec(f"docs:{folder}"), settings)
    with store.connect(settings) as conn:
        return refresh.run(conn, name, read, defaults.embedder(settings), settings)


def naive_ingest(settings, name: str, folder: Path) -> int:
    """The obvious way: each chunk embedded alone, each row its own INSERT."""
    from psycopg.types.json import Jsonb

    from mlstack.rag import chunking, defaults, sources, store

    embedder = defaults.embedder(settings)
    read = sources.read(sources.parse_spec(f"docs:{folder}"), settings)
    rows = 0
    with store.connect(settings) as conn:
        store.ensure_collection(conn, name, embedder.info)
        for d in read.documents:
            pieces = chunking.chunk(d, settings.rag.chunk_size, settings.rag.chunk_overlap)
            conn.execute(
                "INSERT INTO rag_documents (collection, id, source, kind, title, path, metadata,"
                " content_hash,"
                " chunks) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (name, d.id, read.source, d.kind, d.title, d.path, Jsonb(d.metadata), d.hash, len(pieces)),
            )
            for c in pieces:
                vector = embedder.embed([c.embed_text])[0]
                conn.execute(
                    "INSERT INTO rag_chunks (collection, id, document_id, ord, title, heading, text,"
                    " embedding)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (name, c.id, c.document_id, c.ord, c.title, c.heading, c.text, vector),
                )
                rows += 1
    return rows


def langchain_ingest(settings, folder: Path) -> dict[str, float]:
    """LangChain's way into the same Postgres, with the same embedder: the same documents read and
    cut into the same chunks, written by `PGVector.add_documents` (langchain-postgres); then its
    indexing API, `index()` with a `SQLRecordManager`, once to fill a collection and once more
    with nothing changed. Reading and chunking are timed on both sides, as in the refresh."""
    from langchain_classic.indexes import SQLRecordManager
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import index
    from langchain_postgres import PGVector
    from sqlalchemy import create_engine

    from mlstack import postgres
    from mlstack.rag import defaults

    embedder = defaults.embedder(settings)

    class Same(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

    class SentenceTransformers(Embeddings):
        """`HuggingFaceEmbeddings` (langchain-huggingface) as its documentation sets it up, with
        the same packaged model: its embed path line for line (newlines to spaces, then
        `SentenceTransformer.encode` with its defaults). The package itself cannot be installed
        beside this project: its 1.2.3 requires huggingface-hub<2, and the lock holds 2.4."""

        def __init__(self) -> None:
            from mlstack.llm.embeddings import LocalEmbedder

            self.model = LocalEmbedder().model  # the packaged model on torch, called as LangChain calls it

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            texts = [text.replace("\n", " ") for text in texts]
            return self.model.encode(texts, show_progress_bar=False).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    def documents() -> list[Document]:
        return [
            Document(page_content=c.embed_text, id=c.id, metadata={"source": d.id, "title": d.title})
            for d, c in chunked(settings, folder)
        ]

    engine = create_engine(
        postgres.resolve_dsn(settings).replace("postgresql://", "postgresql+psycopg://", 1)
    )
    started = time.perf_counter()
    PGVector(Same(), connection=engine, collection_name="bench-langchain", use_jsonb=True).add_documents(
        documents()
    )
    add_s = time.perf_counter() - started
    usual = SentenceTransformers()
    usual.embed_query("warm up: the model loads once, outside the timings")
    started = time.perf_counter()
    PGVector(usual, connection=engine, collection_name="bench-langchain-st", use_jsonb=True).add_documents(
        documents()
    )
    usual_s = time.perf_counter() - started
    vectors = PGVector(Same(), connection=engine, collection_name="bench-langchain-index", use_jsonb=True)
    records = SQLRecordManager("pgvector/bench-langchain-index", engine=engine)
    records.create_schema()
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        done = index(
            documents(), records, vectors, cleanup="incremental", source_id_key="source", key_encoder="sha256"
        )
        runs.append(time.perf_counter() - started)
    engine.dispose()
    return {
        "langchain_add_documents_s": round(add_s, 2),
        "langchain_st_add_documents_s": round(usual_s, 2),
        "langchain_index_first_s": round(runs[0], 2),
        "langchain_index_unchanged_s": round(runs[1], 3),
        # incremental cleanup runs per batch of 100: a document whose chunks straddle two batches
        # loses those in the later one at the first batch's cleanup, and they are embedded again
        "langchain_index_unchanged_readded": done["num_added"],
    }


def store_only(settings, folder: Path) -> tuple[float, float]:
    """The writes alone, with the embeddings computed once beforehand: one COPY-based write per
    batch vs a row-by-row INSERT per chunk."""
    from mlstack.rag import chunking, defaults, sources, store

    embedder = defaults.embedder(settings)
    read = sources.read(sources.parse_spec(f"docs:{folder}"), settings)
    pieces = [c for d in read.documents for c in chunking.chunk(d, settings.rag.chunk_size, 0)]
    vectors = dict(zip([c.id for c in pieces], embedder.embed([c.embed_text for c in pieces]), strict=True))
    timings = []
    with store.connect(settings) as conn:
        for name in ("bench-copy", "bench-rows"):
            store.drop_collection(conn, name)
            store.ensure_collection(conn, name, embedder.info)
        started = time.perf_counter()
        store.write(conn, "bench-copy", read.source, read.documents, pieces, vectors)
        timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.write(conn, "bench-rows", read.source, read.documents, [], {})  # the documents
        for c in pieces:
            conn.execute(
                "INSERT INTO rag_chunks (collection, id, document_id, ord, title, heading, text,"
                " embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                ("bench-rows", c.id, c.document_id, c.ord, c.title, c.heading, c.text, vectors[c.id]),
            )
        timings.append(time.perf_counter() - started)
    return timings[0], timings[1]


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 500), dim))
    points = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def index_bench(settings, n: int, queries: int) -> dict[str, float]:
    from psycopg import sql
    from rag_corpus import members

    from mlstack.llm.providers import ModelInfo
    from mlstack.rag import retrieve, store

    name = "bench-index"
    data = clustered(n + queries, 384, seed=7)
    vectors, probes = data[:n], data[n:]
    # Text for the full-text arm: 40 words a chunk, drawn Zipf-like from pandas' docstrings' words.
    words = sorted({w for _, doc in members("pandas:DataFrame") for w in doc.lower().split() if w.isalpha()})
    rng = np.random.default_rng(5)
    weights = 1 / np.arange(1, len(words) + 1)
    drawn = rng.choice(len(words), size=(n, 40), p=weights / weights.sum())
    per_doc = 100
    with store.connect(settings) as conn:
        store.drop_collection(conn, name)
        coll = store.ensure_collection(conn, name, ModelInfo("synthetic", "clustered-384", 384))
        store.drop_index(conn, coll)  # a bulk load: build the index once, afterwards
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(
                "COPY rag_documents (collection, id, source, kind, title, updated_at, content_hash, chunks)"
                " FROM STDIN"
            ) as copy:
                for d in range(n // per_doc + 1):  # three kinds, a year of dates: what filters pick
                    updated = datetime(2026, d % 12 + 1, 1, tzinfo=UTC)
                    copy.write_row((name, f"d{d}", "synthetic", KINDS[d % 3], f"d{d}", updated, "h", per_doc))
            with cur.copy(
                "COPY rag_chunks (collection, id, document_id, ord, title, heading, text, embedding)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "text", "text", "int4", "text", "text", "text", "vector"])
                for i, vector in enumerate(vectors):
                    text = " ".join(words[w] for w in drawn[i])
                    copy.write_row((name, f"c{i}", f"d{i // per_doc}", i % per_doc, "", "", text, vector))
        console.print(f"building HNSW over {n:,} vectors ...")
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        store.create_index(conn, coll)
        build_s = time.perf_counter() - started
        store.update_statistics(conn, n)  # as a refresh of this size ends
        query = sql.SQL(
            "SELECT id FROM rag_chunks WHERE collection = %s ORDER BY {} <=> %s::vector(384) LIMIT 10"
        ).format(coll.vector())

        def run(exact: bool) -> tuple[list[set[str]], float]:
            found = []
            with conn.transaction():
                retrieve.search_settings(conn)  # as the project's searches run
                if exact:
                    conn.execute("SET LOCAL enable_indexscan = off")
                started = time.perf_counter()
                for probe in probes:
                    found.append({row[0] for row in conn.execute(query, (name, probe))})
                return found, time.perf_counter() - started

        approximate, hnsw_s = run(exact=False)
        truth, exact_s = run(exact=True)
        filtered = filtered_bench(conn, coll, probes, words) | {"retrieval_chunks": n}
        store.drop_collection(conn, name)
    recall = float(np.mean([len(a & t) / 10 for a, t in zip(approximate, truth, strict=True)]))
    return {
        "hnsw_recall_at_10": round(recall, 4),
        "hnsw_qps": round(queries / hnsw_s, 1),
        "exact_qps": round(queries / exact_s, 1),
        "hnsw_qps_speedup": round(exact_s / hnsw_s, 1),
        "hnsw_build_s": round(build_s, 1),
        **filtered,
    }


KINDS = ("docs", "slack", "github")


def filtered_bench(conn, coll, probes: np.ndarray, words: list[str]) -> dict[str, float]:
    """The project's own search path on the 100k-chunk collection, in a table that holds the
    other collections too: hybrid retrieval's latency (`retrieve.search`, vector and full text
    fused), and with a kind and a date filter, pgvector 0.8's iterative scan's recall@10 against
    the exact filtered answer and its queries/s."""
    from psycopg import sql

    from mlstack.rag import retrieve

    rng = np.random.default_rng(11)
    latencies = []
    for probe in probes:
        question = " ".join(rng.choice(words, 6))
        started = time.perf_counter()
        retrieve.search(conn, coll, question, probe, k=5, mode="hybrid")
        latencies.append(time.perf_counter() - started)
    since = datetime(2026, 7, 1, tzinfo=UTC)
    query = sql.SQL(
        "SELECT c.id FROM rag_chunks c JOIN rag_documents d ON d.collection = c.collection"
        " AND d.id = c.document_id WHERE c.collection = %s AND d.kind = 'slack' AND d.updated_at >= %s"
        " ORDER BY {} <=> %s::vector(384) LIMIT 10"
    ).format(coll.vector())  # unqualified: the expression the index is on

    def run(exact: bool) -> tuple[list[set[str]], float]:
        found = []
        with conn.transaction():
            retrieve.search_settings(conn)
            if exact:
                conn.execute("SET LOCAL enable_indexscan = off")
            started = time.perf_counter()
            for probe in probes:
                found.append({row[0] for row in conn.execute(query, (coll.name, since, probe))})
            return found, time.perf_counter() - started

    approximate, hnsw_s = run(exact=False)
    truth, exact_s = run(exact=True)
    recall = np.mean([len(a & t) / max(1, len(t)) for a, t in zip(approximate, truth, strict=True)])
    return {
        **percentiles([t * 1000 for t in latencies], "retrieval"),
        "filtered_recall_at_10": round(float(recall), 4),
        "filtered_qps": round(len(probes) / hnsw_s, 1),
        "filtered_exact_qps": round(len(probes) / exact_s, 1),
    }


def embed_bench(settings, folder: Path, limit: int) -> dict[str, float]:
    """The configured embedder (ONNX int8 by default) vs `SentenceTransformer.encode` with its
    defaults on the same packaged model and chunks; the cosine of their two vectors per chunk."""
    from mlstack.llm.embeddings import LocalEmbedder
    from mlstack.rag import defaults

    texts = [c.embed_text for _, c in chunked(settings, folder)][:limit]
    embedder = defaults.embedder(settings)
    model = LocalEmbedder().model  # the packaged model on torch, called with encode's defaults
    embedder.embed(texts[:8])
    model.encode(texts[:8])
    started = time.perf_counter()
    ours = embedder.embed(texts)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = model.encode(texts, normalize_embeddings=True)
    theirs_s = time.perf_counter() - started
    cosine = (ours * theirs).sum(axis=1)
    return {
        "embed_backend": settings.llm.embedding_backend,
        "embed_chunks": len(texts),
        "embed_chunks_per_s": round(len(texts) / ours_s, 1),
        "baseline_chunks_per_s": round(len(texts) / theirs_s, 1),
        "embed_speedup": round(theirs_s / ours_s, 2),
        "embed_mean_cosine": round(float(cosine.mean()), 5),
        "embed_min_cosine": round(float(cosine.min()), 5),
    }


def torch_quality(settings, folder: Path, questions_file: Path) -> dict:
    """The held-out set again with the same model on torch: what the faster embedder costs in
    retrieval quality, if anything."""
    llm = settings.llm.model_copy(update={"embedding_backend": "torch"})
    on_torch = settings.model_copy(update={"llm": llm})
    refresh_once(on_torch, "bench-held-out-torch", folder)
    scored = quality(on_torch, "bench-held-out-torch", questions_file, "torch_test_")
    keep = [f"torch_test_{mode}_{key}" for mode in ("vector", "hybrid") for key in ("hit_at_5", "mrr_at_10")]
    return {key: scored[key] for key in keep}


COLLECTIONS = ("bench", "bench-small", "bench-naive", "bench-dev", "bench-held-out", "bench-held-out-torch")
HELD_OUT = ("numpy.random:Generator", "numpy.linalg", "sklearn.metrics")
# The development corpus: pandas' DataFrame (the ingest corpus) and scipy's optimizers, whose
# questions share more of their documents' words.
DEV_EXTRA = ("scipy.optimize",)


def library_corpus(folder: Path, targets: tuple[str, ...], limit: int | None = None) -> Path:
    from rag_corpus import write

    for target in targets:
        write(target, folder, limit)
    return folder


def dev_corpus(folder: Path, pandas: Path, limit: int | None = None) -> Path:
    shutil.copytree(pandas, folder)
    return library_corpus(folder, DEV_EXTRA, limit)


class Bm25Chunks:
    """BM25 (`bm25s`) over a collection's own chunks: title, heading and text, as the full-text
    arm indexes them."""

    def __init__(self, conn, name: str) -> None:
        import logging

        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets its own to DEBUG on import
        self.rows = conn.execute(
            "SELECT c.document_id, d.kind, d.title, d.url, d.path, c.id, c.heading, c.title || ' ' ||"
            " c.heading || ' ' || c.text, c.text FROM rag_chunks c JOIN rag_documents d"
            " ON d.collection = c.collection AND d.id = c.document_id WHERE c.collection = %s"
            " ORDER BY c.document_id, c.ord",
            (name,),
        ).fetchall()
        self.retriever = bm25s.BM25()
        self.retriever.index(
            bm25s.tokenize([r[7] for r in self.rows], stopwords="en", show_progress=False),
            show_progress=False,
        )

    def top(self, questions: list[str], n: int) -> list[list[int]]:
        import bm25s

        tokens = bm25s.tokenize(questions, stopwords="en", show_progress=False)
        found, _ = self.retriever.retrieve(tokens, k=min(len(self.rows), n), show_progress=False)
        return [[int(i) for i in row] for row in found]

    def hit(self, i: int):
        from mlstack.rag.retrieve import Hit

        doc, kind, title, url, path, chunk, heading, _, text = self.rows[i]
        return Hit(doc, kind, title, url, path, 0.0, 0.0, chunk, heading, text, None)


def per_document(hits: list, k: int) -> list:
    """Each document ranked by its best chunk, as the project's modes rank them."""
    seen: dict = {}
    for hit in hits:
        seen.setdefault(hit.document_id, hit)
    return list(seen.values())[:k]


def bm25_ranked(bm25: Bm25Chunks, questions: list, k: int) -> list[list]:
    found = bm25.top([q.question for q in questions], 50)
    return [per_document([bm25.hit(i) for i in row], k) for row in found]


def ensemble_ranked(conn, coll, bm25: Bm25Chunks, embedder, questions: list, k: int) -> list[list]:
    """LangChain's `EnsembleRetriever` as its documentation builds one: a BM25 retriever and a
    vector-store retriever, equal weights, its reciprocal rank fusion (c = 60), over the same chunks:
    BM25's top 50 and pgvector's top 50 by cosine."""
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from mlstack.rag import retrieve

    class Ranked(BaseRetriever):
        """One arm's chunks per question, computed beforehand (the ensemble only fuses)."""

        found: dict[str, list[Document]]

        def _get_relevant_documents(self, query: str, *, run_manager) -> list[Document]:
            return self.found[query]

    def document(hit) -> Document:
        return Document(page_content=hit.text, metadata={"chunk": hit.chunk_id, "hit": hit})

    texts = [q.question for q in questions]
    lexical = {
        q: [document(bm25.hit(i)) for i in row] for q, row in zip(texts, bm25.top(texts, 50), strict=True)
    }
    vectors = embedder.embed(texts)
    semantic = {
        q: [
            document(retrieve._hit(row, row[10]))
            for row in retrieve._chunks(conn, coll, "vector", q, v, retrieve.Filters(), 50)
        ]
        for q, v in zip(texts, vectors, strict=True)
    }
    ensemble = EnsembleRetriever(
        retrievers=[Ranked(found=lexical), Ranked(found=semantic)], weights=[0.5, 0.5], id_key="chunk"
    )
    return [per_document([doc.metadata["hit"] for doc in ensemble.invoke(q)], k) for q in texts]


BASELINES = ("vector", "fulltext", "bm25", "ensemble")


def quality(settings, name: str, questions_file: Path, prefix: str = "") -> dict:
    """Each mode's metrics and intervals, BM25's beside them, and the refusal rates."""
    from mlstack.rag import defaults, evaluate, store

    questions = evaluate.read_questions(questions_file)
    embedder = defaults.embedder(settings)
    with store.connect(settings) as conn:
        coll = store.require_collection(conn, name)
        ranked = evaluate.ranked_by_mode(conn, coll, embedder, questions)
        bm25 = Bm25Chunks(conn, name)
        ranked["bm25"] = bm25_ranked(bm25, questions, evaluate.MRR_AT)
        ranked["ensemble"] = ensemble_ranked(conn, coll, bm25, embedder, questions, evaluate.MRR_AT)
    out: dict = {}
    for mode, hits in ranked.items():
        spans = evaluate.intervals(hits, questions)
        for key, value in evaluate.scores(hits, questions).items():
            out[f"{prefix}{mode}_{key}"] = value
            out[f"{prefix}{mode}_{key}_ci"] = list(spans[key])
    answered = [hits[: settings.rag.k] for hits in ranked["hybrid"]]
    refusals = evaluate.refusals(answered, questions, settings.rag.min_similarity)
    out |= {f"{prefix}{key}": value for key, value in refusals.items()}
    out[f"{prefix}questions"] = sum(q.answerable for q in questions)
    out[f"{prefix}unanswerable"] = sum(not q.answerable for q in questions)
    best = max(BASELINES, key=lambda m: out[f"{prefix}{m}_mrr_at_10"])
    # Hybrid is ahead of a baseline "by more than the interval" when its lower bound clears the
    # baseline's upper one.
    out[f"{prefix}hybrid_over_best_baseline_mrr"] = round(
        out[f"{prefix}hybrid_mrr_at_10"] - out[f"{prefix}{best}_mrr_at_10"], 4
    )
    out[f"{prefix}best_baseline"] = best
    out[f"{prefix}hybrid_beats_baselines"] = all(
        out[f"{prefix}hybrid_mrr_at_10_ci"][0] > out[f"{prefix}{m}_mrr_at_10_ci"][1] for m in BASELINES
    )
    # The same question, paired: the interval of hybrid's lead over each baseline question by
    # question. It excludes 0 when the set tells the two apart, which their own intervals, each
    # as wide as the set's spread of difficulty, rarely show on a few dozen questions.
    for m in BASELINES:
        lead = evaluate.lead_intervals(ranked["hybrid"], ranked[m], questions)[f"mrr_at_{evaluate.MRR_AT}"]
        out[f"{prefix}hybrid_lead_over_{m}_mrr_ci"] = list(lead)
    out[f"{prefix}hybrid_leads_every_baseline"] = all(
        out[f"{prefix}hybrid_lead_over_{m}_mrr_ci"][0] > 0 for m in BASELINES
    )
    return out


def ask_latency(settings, name: str, questions_file: Path, limit: int | None = None) -> dict[str, float]:
    """`rag ask --extractive` in process, as its flow runs it: the question embedded, the
    collection searched (hybrid), the answer quoted from the closest sentences (or "I don't
    know"); p50 and p99 over the question set, each asked once."""
    from mlstack.rag import answer, defaults, evaluate, retrieve

    embedder = defaults.embedder(settings)
    latencies = []
    for question in evaluate.read_questions(questions_file)[:limit]:
        started = time.perf_counter()
        hits = retrieve.find(settings, embedder, name, question.question, settings.rag.k)
        answer.answer(question.question, hits, embedder, None, settings.rag.min_similarity)
        latencies.append((time.perf_counter() - started) * 1000)
    return percentiles(latencies, "ask")


def percentiles(ms: list[float], prefix: str) -> dict[str, float]:
    return {f"{prefix}_p{q}_ms": round(percentile(ms, q / 100), 1) for q in (50, 99)}


def ask_generated_latency(settings, name: str, questions_file: Path, limit: int) -> dict[str, float]:
    """`rag ask` in process with the local model writing the answer, as the flow asks it (its
    GENERATION: temperature 0, up to 400 tokens), through the local OpenAI-compatible server:
    the question embedded, the collection searched, the answer generated. On answerable
    questions only, so that every one generates. The local model of a fresh data dir is the
    untrained stand-in, whose words are random and which seldom stops before the limit: this is
    the path's cost at that length, not a trained model's answer time."""
    from flows.rag import GENERATION
    from mlstack.llm.providers import resolve_chat
    from mlstack.rag import answer, defaults, evaluate, retrieve

    embedder = defaults.embedder(settings)
    chat = resolve_chat(settings, "local")  # starts the local server, outside the timings
    chat.complete([{"role": "user", "content": "warm up"}], max_tokens=8)

    class Counted:  # the chat provider, counting the tokens each answer generated
        model = chat.model

        def __init__(self) -> None:
            self.tokens: list[int] = []

        def complete(self, messages: list[dict[str, str]], **params):
            result = chat.complete(messages, **params)
            self.tokens.append(int(result.usage.get("completion_tokens", 0)))
            return result

    counted = Counted()
    latencies, modes = [], []
    for question in [q for q in evaluate.read_questions(questions_file) if q.answerable][:limit]:
        started = time.perf_counter()
        hits = retrieve.find(settings, embedder, name, question.question, settings.rag.k)
        done = answer.answer(
            question.question, hits, embedder, counted, settings.rag.min_similarity, **GENERATION
        )
        latencies.append((time.perf_counter() - started) * 1000)
        modes.append(done.mode)
    return {
        **percentiles(latencies, "ask_generated"),
        "ask_generated_questions": modes.count("generated"),
        "ask_generated_mean_tokens": round(sum(counted.tokens) / max(len(counted.tokens), 1), 1),
    }


def ask_cli_latency(name: str, questions_file: Path, limit: int) -> dict[str, float]:
    """`mlstack rag ask --extractive --json` as a user runs it: a fresh process each, its flow run
    on the data dir's local Prefect API, in the warm process (the default), after three runs
    that start both; wall time of each, p50 and p99."""
    import os
    import subprocess

    from mlstack.rag import evaluate

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["MLSTACK_ORCHESTRATION_WARM"] = "true"  # the default, which the test suite turns off
    cli = [sys.executable, "-m", "mlstack.cli"]
    ask = [*cli, "rag", "ask", "--extractive", "--json", "--collection", name]
    questions = [q.question for q in evaluate.read_questions(questions_file)][:limit]
    latencies = []

    def asked(question: str) -> None:
        done = subprocess.run([*ask, question], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"rag ask failed ({done.returncode}): {done.stderr[-3000:]}")

    try:
        for question in questions[:3]:  # the first starts the API and the warm process
            asked(question)
        for question in questions:
            started = time.perf_counter()
            asked(question)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        subprocess.run([*cli, "down"], env=env, capture_output=True)
    return percentiles(latencies, "ask_cli")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=190, help="pandas docstrings in the ingest corpus")
    parser.add_argument("--naive-docs", type=int, default=40, help="of those, how many the naive way ingests")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-chunks", type=int, default=400)
    parser.add_argument(
        "--held-out-docs", type=int, default=None, help="docstrings per held-out source (default: all)"
    )
    parser.add_argument("--ask-questions", type=int, default=None, help="questions timed for rag ask")
    parser.add_argument(
        "--ask-slow-questions",
        type=int,
        default=20,
        help="questions timed for rag ask with the local model generating, and through the CLI",
    )
    args = parser.parse_args()
    own_home("rag")
    from mlstack.settings import get_settings

    settings = get_settings()
    work = scratch("rag-corpus")
    folder = corpus(args.docs, work / "all")
    small = corpus(args.naive_docs, work / "small")
    held_out = library_corpus(work / "held-out", HELD_OUT, args.held_out_docs)
    dev = dev_corpus(work / "dev", folder, args.held_out_docs)
    from mlstack.rag import store

    with store.connect(settings) as conn:
        for name in COLLECTIONS:
            store.drop_collection(conn, name)

    from mlstack.rag import defaults

    defaults.embedder(settings).embed(["warm up: the model loads once, outside the timings"])
    console.print("ingest: one call + COPY vs a call and a row per chunk ...")
    started = time.perf_counter()
    refresh_once(settings, "bench-small", small)
    ours_small_s = time.perf_counter() - started
    started = time.perf_counter()
    naive_rows = naive_ingest(settings, "bench-naive", small)
    naive_s = time.perf_counter() - started

    copy_s, rows_s = store_only(settings, folder)
    console.print(f"refresh: {args.docs} documents, then again unchanged ...")
    started = time.perf_counter()
    first = refresh_once(settings, "bench", folder)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = refresh_once(settings, "bench", folder)
    again_s = time.perf_counter() - started
    assert again["added"] + again["changed"] + again["embedded"] == 0, again
    console.print("the same documents through LangChain: PGVector.add_documents, then index() twice ...")
    lc = langchain_ingest(settings, folder)
    # What any ingest with this embedder must spend: the same chunks' texts embedded in one call,
    # with nothing read, cut or written. Both sides above pay it; the rest is theirs.
    texts = [c.embed_text for _, c in chunked(settings, folder)]
    started = time.perf_counter()
    defaults.embedder(settings).embed(texts)
    floor_s = time.perf_counter() - started

    result = {
        "bench": "rag",
        "ingest_chunks": naive_rows,
        "ingest_s": round(ours_small_s, 2),
        "naive_ingest_s": round(naive_s, 2),
        "ingest_speedup": round(naive_s / ours_small_s, 2),
        "store_copy_s": round(copy_s, 3),
        "store_rows_s": round(rows_s, 3),
        "store_speedup": round(rows_s / copy_s, 1),
        "first_refresh_s": round(first_s, 2),
        "rerefresh_s": round(again_s, 3),
        "rerefresh_fraction": round(again_s / first_s, 4),
        "first_refresh_chunks": first["embedded"],
        **lc,
        "first_refresh_over_langchain": round(lc["langchain_add_documents_s"] / first_s, 2),
        "first_refresh_over_langchain_st": round(lc["langchain_st_add_documents_s"] / first_s, 2),
        "rerefresh_over_langchain_index": round(again_s / lc["langchain_index_unchanged_s"], 3),
        "embed_floor_s": round(floor_s, 2),
        # the most any ingest through this embedder could be ahead of LangChain's add_documents
        "langchain_over_embed_floor": round(lc["langchain_add_documents_s"] / floor_s, 2),
    }
    console.print("quality on the development set ...")
    refresh_once(settings, "bench-dev", dev)
    result |= quality(settings, "bench-dev", HERE / "data" / "dev_questions.jsonl")
    console.print("quality on the held-out set ...")
    refresh_once(settings, "bench-held-out", held_out)
    result |= quality(settings, "bench-held-out", HERE / "data" / "held_out_questions.jsonl", "test_")
    result |= ask_latency(
        settings, "bench-held-out", HERE / "data" / "held_out_questions.jsonl", args.ask_questions
    )
    console.print("rag ask with the local model generating, and through the CLI ...")
    result |= ask_generated_latency(
        settings, "bench-held-out", HERE / "data" / "held_out_questions.jsonl", args.ask_slow_questions
    )
    result |= ask_cli_latency(
        "bench-held-out", HERE / "data" / "held_out_questions.jsonl", args.ask_slow_questions
    )
    console.print("embedding throughput, and the held-out set embedded on torch ...")
    result |= embed_bench(settings, folder, args.embed_chunks)
    result |= torch_quality(settings, held_out, HERE / "data" / "held_out_questions.jsonl")
    result |= index_bench(settings, args.vectors, args.queries)
    rows = [
        ("ingest (s)", f"{ours_small_s:.2f}", f"{naive_s:.2f}", f"{result['ingest_speedup']}x"),
        (
            "writes alone, COPY vs row INSERTs (s)",
            f"{copy_s:.3f}",
            f"{rows_s:.3f}",
            f"{result['store_speedup']}x",
        ),
        (
            "unchanged re-refresh vs first (s)",
            f"{again_s:.3f}",
            f"{first_s:.2f}",
            f"{result['rerefresh_fraction']}",
        ),
        (
            "first ingest vs LangChain PGVector.add_documents (s)",
            f"{first_s:.2f}",
            f"{lc['langchain_add_documents_s']}",
            f"{result['first_refresh_over_langchain']}x",
        ),
        (
            "first ingest vs LangChain add_documents, the model on sentence-transformers (s)",
            f"{first_s:.2f}",
            f"{lc['langchain_st_add_documents_s']}",
            f"{result['first_refresh_over_langchain_st']}x",
        ),
        (
            "the same chunks embedded alone vs LangChain PGVector.add_documents (s)",
            f"{floor_s:.2f}",
            f"{lc['langchain_add_documents_s']}",
            f"{result['langchain_over_embed_floor']}x",
        ),
        (
            "unchanged re-refresh vs LangChain index() unchanged (s)",
            f"{again_s:.3f}",
            f"{lc['langchain_index_unchanged_s']}"
            f" ({lc['langchain_index_unchanged_readded']} chunks re-added)",
            f"{result['rerefresh_over_langchain_index']}",
        ),
        (
            "embed (chunks/s)",
            f"{result['embed_chunks_per_s']}",
            f"{result['baseline_chunks_per_s']}",
            f"{result['embed_speedup']}x (cosine mean {result['embed_mean_cosine']},"
            f" min {result['embed_min_cosine']})",
        ),
        (
            "test set hit@5, vector / hybrid: this embedder vs torch",
            f"{result['test_vector_hit_at_5']} / {result['test_hybrid_hit_at_5']}",
            f"{result['torch_test_vector_hit_at_5']} / {result['torch_test_hybrid_hit_at_5']}",
            "",
        ),
        (
            f"hybrid retrieval on {args.vectors:,} chunks, p50 / p99 (ms)",
            f"{result['retrieval_p50_ms']} / {result['retrieval_p99_ms']}",
            "",
            "",
        ),
        (
            "kind + date filtered top-10 queries/s (iterative scan vs exact)",
            f"{result['filtered_qps']}",
            f"{result['filtered_exact_qps']}",
            f"recall {result['filtered_recall_at_10']}",
        ),
        (
            "`rag ask --extractive` in process, p50 / p99 (ms)",
            f"{result['ask_p50_ms']} / {result['ask_p99_ms']}",
            "",
            "",
        ),
        (
            "`rag ask`, the local model generating, in process, p50 / p99 (ms)",
            f"{result['ask_generated_p50_ms']} / {result['ask_generated_p99_ms']}",
            "",
            f"{result['ask_generated_questions']} answers, {result['ask_generated_mean_tokens']} tokens each",
        ),
        (
            "`mlstack rag ask --extractive` as a process (warm), p50 / p99 (ms)",
            f"{result['ask_cli_p50_ms']} / {result['ask_cli_p99_ms']}",
            "",
            "",
        ),
        (
            "top-10 queries/s",
            f"{result['hnsw_qps']}",
            f"{result['exact_qps']}",
            f"{result['hnsw_qps_speedup']}x (recall {result['hnsw_recall_at_10']})",
        ),
        *[
            (
                f"{label} set: {mode} hit@5 / MRR@10 (95% interval)",
                f"{result[f'{prefix}{mode}_hit_at_5']} / {result[f'{prefix}{mode}_mrr_at_10']}",
                "",
                "({:.2f}-{:.2f})".format(*result[f"{prefix}{mode}_mrr_at_10_ci"]),
            )
            for label, prefix in (("dev", ""), ("test", "test_"))
            for mode in (*BASELINES, "hybrid")
        ],
        *[
            (
                f"test set: hybrid's MRR@10 lead over {mode}, paired (95% interval)",
                f"{result['test_hybrid_mrr_at_10'] - result[f'test_{mode}_mrr_at_10']:+.3f}",
                "",
                "({:+.3f} to {:+.3f})".format(*result[f"test_hybrid_lead_over_{mode}_mrr_ci"]),
            )
            for mode in BASELINES
        ],
        *[
            (
                f'{label} set: "I don\'t know" on unanswerable / answerable',
                f"{result[f'{prefix}unknown_rate_unanswerable']} / {result[f'{prefix}false_refusal_rate']}",
                "",
                "",
            )
            for label, prefix in (("dev", ""), ("test", "test_"))
        ],
    ]
    report("RAG: mlstack vs the obvious way", rows, ("what", "mlstack", "baseline", "ratio"), result)


if __name__ == "__main__":
    main()
