"""Where benchmark results are kept, and the tables in README.md and docs/benchmarks.md made from them.

Each benchmark writes its JSON (with the commit, the machine and the date) to
`benchmarks/results/<name>.json` (`MLSTACK_BENCH_RESULTS` moves the folder: the smoke tests and
`benchmarks/gpu.sh --smoke` write elsewhere so that a smoke run never replaces a measured one).
Every figure in the two tables is a field of one of those files, named in `ROWS`:

    python benchmarks/_results.py          # rewrite both tables from benchmarks/results/
    python benchmarks/_results.py --check  # exit 1 when a table is stale
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import string
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "benchmarks" / "results"
# The documents whose generated table lies between these two lines.
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "benchmarks.md")
BEGIN = "<!-- benchmarks: made by `python benchmarks/_results.py` from benchmarks/results/; do not edit -->"
END = "<!-- /benchmarks -->"


def results_dir() -> Path:
    return Path(os.environ.get("MLSTACK_BENCH_RESULTS") or DEFAULT_DIR)


@dataclass(frozen=True)
class Row:
    """One documented figure: a benchmark's result file, a template over its top-level keys, a target."""

    bench: str
    what: str
    template: str
    target: str

    @property
    def script(self) -> str:
        """The benchmark script that writes this row's result: `gpu/` names where gpu.sh keeps it."""
        return self.bench.removeprefix("gpu/")

    def fields(self) -> set[str]:
        return {
            field.split(".")[0].split("[")[0]
            for _, field, _, _ in string.Formatter().parse(self.template)
            if field
        }


ROWS: tuple[Row, ...] = (
    Row(
        "serving",
        "`/predict` over loopback (2 workers) vs the same work in process",
        "p99 **{p99_ms:.1f} ms** at {rate:.0f} req/s, p50 ratio **{p50_ratio:.2f}** vs the tight loop "
        "({p50_ratio_vs_paced:.2f} vs paced); {rps:,.0f} req/s closed loop, {errors} errors; "
        "5% hostile: {hostile_good_failures} good failed, {hostile_not_4xx} bad not 4xx",
        "p99 <= 10 ms, p50 ratio <= 3, >= 300 req/s, 0 errors",
    ),
    Row(
        "batch_inference",
        "`predict-batch`'s path (Feast point-in-time + predict + Postgres and parquet writes) vs a "
        "hand-written DuckDB `ASOF JOIN` + predict + the same writes",
        "**{batch_over_baseline:.2f}x** the baseline's rows/s ({batch_rows_per_s:,.0f} vs "
        "{baseline_rows_per_s:,.0f}, {batch_rows:,} rows, same predictions: {same_predictions}); "
        "one request at a time: {online_rows_per_s:,.0f} rows/s",
        ">= 0.5x",
    ),
    Row(
        "orchestration",
        "`mlstack data flow --days 1 --append`, `monitor` and `rag ask --extractive` as fresh processes vs "
        "their blocks in a fresh plain `python` process (below 0: faster, the warm process having "
        "imported what the plain one imports); the training flow vs its blocks",
        "over the blocks, warm / cold: data flow **{command_warm_over_plain_s:.1f} / "
        "{command_cold_over_plain_s:.1f} s**, monitor {monitor_warm_over_plain_s:.1f} / "
        "{monitor_cold_over_plain_s:.1f} s, rag ask {ask_warm_over_plain_s:.1f} / "
        "{ask_cold_over_plain_s:.1f} s; training flow {prefect_over_plain:.2f}x its blocks",
        "<= 1 s warm, <= 3 s cold; training <= 1.15",
    ),
    Row(
        "llm_server",
        "the local OpenAI-compatible server, 8 concurrent clients vs 1, vs transformers' batched `generate`",
        "**{concurrency_tokens_ratio:.1f}x** the tokens/s of one client, p50 "
        "**{concurrency_p50_ratio:.1f}x** its latency, first token {ttft_ms:.0f} ms streamed; "
        "{served_over_hf_batched:.2f}x batched `generate`'s tokens/s; greedy text the same: {same_text}",
        ">= 3x tokens/s, p50 <= 3x, same text",
    ),
    Row(
        "drift",
        "one monitoring window end to end (drift, performance, reports, workspace, alert); the drift "
        "check vs a scipy KS + PSI loop",
        "window at 100k rows **{window_100k_s:.1f} s**; after {history_windows} stored windows "
        "**{history_ratio:.2f}x** the first's time; the check {check_over_scipy_100k:.0f}x "
        "scipy's at 100k rows (above {sample_rows:,} it samples)",
        "<= 10 s at 100k; 500th <= 1.2x the first",
    ),
    Row(
        "pretraining",
        "the training loop vs a Hugging Face `Trainer` (tuned on a GPU); tokenization vs a script"
        " around `encode_batch`",
        "**{speedup_over_baseline:.2f}x** the Trainer's tokens/s on {device} (median of {repeats}), MFU "
        "{mfu:.2f}; tokenization {tokenize_over_library:.2f}x the library's default",
        "GPU: >= 1.3x, MFU >= 0.40; tokenization >= 1.0x",
    ),
    Row(
        "finetuning",
        "LoRA vs full fine-tuning, each a fresh process",
        "LoRA's peak RSS **{rss_ratio:.2f}x** full's ({lora_peak_rss_mb:,} vs {full_peak_rss_mb:,} MB "
        "above imports, {preset}; live tensors {peak_memory_ratio:.2f}x); trains {trainable_fraction:.1%} "
        "of the weights",
        "peak RSS <= 0.7x",
    ),
    Row(
        "gpu/pretraining",
        "`benchmarks/gpu.sh`: the training loop in bf16 vs a `Trainer` with bf16, tf32, `torch_compile` "
        "and fused AdamW; tokenization in parallel partitions vs one and vs `encode_batch_fast`",
        "**{speedup_over_baseline:.2f}x** the Trainer's tokens/s ({tokens_per_s:,.0f}) on {device}, "
        "`{preset}` preset (median of {repeats}), MFU **{mfu:.2f}**; tokenization "
        "{tokenize_parallel_speedup:.2f}x one partition, {tokenize_over_library:.2f}x the library's",
        ">= 1.3x, MFU >= 0.40; tokenization >= 1.0x",
    ),
    Row(
        "gpu/finetuning",
        "`benchmarks/gpu.sh`: LoRA vs full fine-tuning on a GPU, torch's peak allocation",
        "LoRA's peak GPU memory **{peak_memory_ratio:.2f}x** full's ({preset}, trains "
        "{trainable_fraction:.1%} of the weights); a step {step_time_ratio:.2f}x full's; validation loss "
        "{lora_val_loss[0]:.2f} -> {lora_val_loss[1]:.2f} (full {full_val_loss[0]:.2f} -> "
        "{full_val_loss[1]:.2f})",
        "peak memory <= 0.7x",
    ),
    Row(
        "gpu/llm_server",
        "`benchmarks/gpu.sh`: the local OpenAI-compatible server on a GPU, 8 concurrent clients vs 1, vs "
        "transformers' batched `generate`",
        "**{concurrency_tokens_ratio:.1f}x** the tokens/s of one client ({tokens_per_s_n_clients:,.0f} vs "
        "{tokens_per_s_1_client:,.0f}), p50 **{concurrency_p50_ratio:.1f}x**, first token {ttft_ms:.0f} ms; "
        "{served_over_hf_batched:.2f}x batched `generate`'s tokens/s; same text: {same_text}",
        ">= 3x tokens/s, p50 <= 3x, same text",
    ),
    Row(
        "rag",
        "a refresh (a call embeds all chunks, a text per core at once, + COPY) vs one chunk at a time; "
        "an unchanged re-refresh; the "
        "collection's HNSW index vs an exact scan",
        "re-refresh **{rerefresh_fraction:.4f}** of the first; ingest {ingest_speedup:.1f}x; HNSW "
        "recall@10 {hnsw_recall_at_10:.3f} at {hnsw_qps_speedup:.0f}x the exact scan's queries/s",
        "re-refresh <= 0.05, recall@10 >= 0.98 at >= 20x",
    ),
    Row(
        "rag",
        "retrieval on a held-out test set (numpy's and scikit-learn's metrics docstrings; no constant"
        " tuned on it) vs vector alone,"
        " full text, BM25 (`bm25s`) and LangChain's `EnsembleRetriever` over the same chunks",
        "MRR@10 hybrid **{test_hybrid_mrr_at_10:.2f}** ({test_hybrid_mrr_at_10_ci[0]:.2f}-"
        "{test_hybrid_mrr_at_10_ci[1]:.2f}), vector {test_vector_mrr_at_10:.2f} "
        "({test_vector_mrr_at_10_ci[0]:.2f}-{test_vector_mrr_at_10_ci[1]:.2f}), EnsembleRetriever "
        "{test_ensemble_mrr_at_10:.2f}, BM25 {test_bm25_mrr_at_10:.2f}, full text "
        "{test_fulltext_mrr_at_10:.2f}; hybrid hit@5 "
        "{test_hybrid_hit_at_5:.2f}; hybrid's lead, paired by question (95%): over vector "
        "{test_hybrid_lead_over_vector_mrr_ci[0]:+.3f} to {test_hybrid_lead_over_vector_mrr_ci[1]:+.3f}, "
        "EnsembleRetriever {test_hybrid_lead_over_ensemble_mrr_ci[0]:+.3f} to "
        "{test_hybrid_lead_over_ensemble_mrr_ci[1]:+.3f}, BM25 {test_hybrid_lead_over_bm25_mrr_ci[0]:+.3f} "
        "to {test_hybrid_lead_over_bm25_mrr_ci[1]:+.3f}; "
        '"I don\'t know" on {test_unknown_rate_unanswerable:.0%} of '
        "{test_unanswerable} unanswerable, {test_false_refusal_rate:.0%} of {test_questions} answerable",
        "hybrid above each baseline by more than the interval; hit@5 >= 0.90",
    ),
    Row(
        "rag",
        "embeddings: the packaged MiniLM on ONNX Runtime (int8) vs `SentenceTransformer.encode`, same chunks",
        "**{embed_speedup:.2f}x** the chunks/s; cosine to torch's vectors {embed_mean_cosine:.3f} mean, "
        "{embed_min_cosine:.3f} min; held-out hit@5 vector {test_vector_hit_at_5:.2f} vs torch "
        "{torch_test_vector_hit_at_5:.2f}, hybrid {test_hybrid_hit_at_5:.2f} vs "
        "{torch_test_hybrid_hit_at_5:.2f}",
        ">= 2x, cosine >= 0.99, hit@5 within 0.01",
    ),
    Row(
        "rag",
        "ingest vs LangChain on the same documents, chunks, embedder and Postgres; and vs LangChain "
        "with the model as its documentation loads it (`HuggingFaceEmbeddings`, torch)",
        "first refresh **{first_refresh_over_langchain:.2f}x** `PGVector.add_documents` "
        "({first_refresh_s:.1f} vs {langchain_add_documents_s:.1f} s; embedding alone "
        "{embed_floor_s:.1f} s, so no ingest with this embedder passes {langchain_over_embed_floor:.2f}x), "
        "**{first_refresh_over_langchain_st:.2f}x** it on sentence-transformers "
        "({langchain_st_add_documents_s:.1f} s); "
        "unchanged re-refresh "
        "**{rerefresh_over_langchain_index:.2f}x** an unchanged `index()` ({rerefresh_s:.2f} vs "
        "{langchain_index_unchanged_s:.2f} s, which re-added {langchain_index_unchanged_readded} chunks)",
        "first >= 1.5x (the same embedder); re-refresh <= 0.5x",
    ),
    Row(
        "rag",
        "answer latency: hybrid retrieval on a 100k-chunk collection, a kind + date filtered HNSW "
        "search (pgvector 0.8's iterative scan) vs the exact scan, `rag ask` in process (extractive, "
        "and the local model generating) and `mlstack rag ask --extractive` as a process",
        "retrieval p99 **{retrieval_p99_ms:.0f} ms** on {retrieval_chunks:,} chunks (p50 "
        "{retrieval_p50_ms:.0f}); filtered recall@10 {filtered_recall_at_10:.3f} at {filtered_qps:.0f} "
        "queries/s (exact {filtered_exact_qps:.0f}); `rag ask` p50 / p99: extractive {ask_p50_ms:.0f} / "
        "{ask_p99_ms:.0f} ms, generated {ask_generated_p50_ms:.0f} / {ask_generated_p99_ms:.0f} ms "
        "({ask_generated_mean_tokens:.0f} tokens of the untrained stand-in), the command "
        "{ask_cli_p50_ms:.0f} / {ask_cli_p99_ms:.0f} ms",
        "retrieval p99 <= 100 ms on 100k chunks",
    ),
    Row(
        "webhooks",
        "a signed GitHub delivery on `mlstack up`'s stack (receiver, trigger, worker, `rag-update`) to the "
        "issue searchable, vs the hourly refresh's mean wait; a burst's refresh runs vs one per delivery",
        "delivery to searchable **{delivery_to_searchable_s:.1f} s** median (worst "
        "{delivery_to_searchable_worst_s:.1f}, first {delivery_to_searchable_cold_s:.1f} with the "
        "embedder's load) vs {scheduled_mean_s:,.0f} s; {burst_deliveries} deliveries in 10 s: "
        "**{burst_runs} runs**, all searchable {burst_searchable_s:.0f} s after the first",
        "<= 30 s; a burst of 100 in <= 3 runs, none lost",
    ),
    Row(
        "first_use",
        "what a user meets first: `make demo`, `mlstack --help`, `mlstack up`",
        "demo **{demo_s:.0f} s**, `--help` **{help_s:.2f} s**, `up` **{up_ready_s:.1f} s** to all "
        "services answering, **{up_resident_mb:,.0f} MB** resident (PSS)",
        "demo <= 300 s, --help <= 0.5 s, up <= 20 s and <= 1,500 MB",
    ),
    Row(
        "install_size",
        "the default install vs all extras",
        "**{default_over_all:.2f}** ({default_mb:,.0f} vs {all_extras_mb:,.0f} MB)",
        "<= 0.6",
    ),
)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = None
    if shutil.which("nvidia-smi"):
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        gpu = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None
    return {"cores": os.cpu_count(), "cpu": cpu, "gpu": gpu}


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def write(result: dict) -> Path:
    """Keep `result` with what produced it: the commit (and whether the tree had changes), the
    machine, the date."""
    kept = {
        **result,
        "commit": _git("rev-parse", "HEAD") or None,
        "dirty": bool(_git("status", "--porcelain", "--", ".", ":!benchmarks/results")),
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
    }
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result['bench']}.json"
    path.write_text(json.dumps(kept, indent=1) + "\n")
    return path


def load(folder: Path | None = None) -> dict[str, dict]:
    """Each kept result by name: `pretraining`, or `gpu/pretraining` for `benchmarks/gpu.sh`'s."""
    folder = folder or results_dir()
    paths = sorted([*folder.glob("*.json"), *folder.glob("gpu/*.json")])
    return {p.relative_to(folder).with_suffix("").as_posix(): json.loads(p.read_text()) for p in paths}


def table(results: dict[str, dict]) -> str:
    lines = ["| benchmark | compares | result | target | run |", "| --- | --- | --- | --- | --- |"]
    for row in ROWS:
        kept = results.get(row.bench)
        if kept is None:
            figure, run = "not yet run", ""
        else:
            figure = row.template.format(**kept)
            where = kept["machine"]["gpu"] or f"{kept['machine']['cores']} cores"
            changed = " with uncommitted changes" if kept.get("dirty") else ""
            run = f"{kept['date'][:10]}, `{(kept['commit'] or 'unknown')[:7]}`{changed}, {where}"
        lines.append(f"| `{row.bench}` | {row.what} | {figure} | {row.target} | {run} |")
    return "\n".join(lines)


def rendered(text: str, results: dict[str, dict]) -> str:
    head, begin, rest = text.partition(BEGIN)
    if not begin:
        raise SystemExit(f"no line {BEGIN!r} in the document")
    _, end, tail = rest.partition(END)
    if not end:
        raise SystemExit(f"no line {END!r} after {BEGIN!r}")
    return f"{head}{BEGIN}\n{table(results)}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a table differs from the results")
    args = parser.parse_args()
    results = load(DEFAULT_DIR)
    stale = []
    for document in DOCUMENTS:
        text = document.read_text()
        new = rendered(text, results)
        if new != text:
            stale.append(document.relative_to(ROOT))
            if not args.check:
                document.write_text(new)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(map(str, stale))}" if stale else "tables up to date")
    sys.exit(1 if args.check and stale else 0)


if __name__ == "__main__":
    main()
