"""Every script in benchmarks/ runs at a smoke size, ends with its JSON line and keeps it (with its
commit, machine and date), carrying every key the README's table reads and those its own table
reports. The README's and docs' tables are what benchmarks/results/ holds, so each documented
number can be traced to a run. Nothing here times anything: a benchmark's figures are its own
business; this keeps the scripts and the documents from rotting between the runs that measure."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, copy_trained_home
from tests.kill import command_env, run


def _results_module():
    spec = importlib.util.spec_from_file_location("_results", PROJECT_ROOT / "benchmarks" / "_results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


results = _results_module()


def documented(script: str) -> set[str]:
    """The keys the tables in README.md and docs/benchmarks.md read from the script's result."""
    return set().union(*(row.fields() for row in results.ROWS if row.script == script))


# script: (smoke arguments, whether it needs a trained data dir, the keys its JSON line must carry)
SMOKE: dict[str, tuple[list[str], bool, set[str]]] = {
    "drift": (
        ["--sizes", "2000", "100000", "--window-sizes", "100000", "--history", "1", "3", "--repeats", "1"],
        True,
        {"columns", "rows_2k_s", "baseline_2k_s"},
    ),
    "batch_inference": (
        ["--online-seconds", "1", "--repeats", "1"],
        True,
        {"batch_over_online", "batch_rows_per_s", "online_rows_per_s", "batch_rows", "batch_s"},
    ),
    "serving": (
        ["--seconds", "1", "--clients", "2", "--workers", "1", "--rate", "20"],
        True,
        {
            "p50_ratio",
            "rps",
            "errors",
            "p50_ratio_vs_paced",
            "p99_ms",
            "in_process",
            "at_rate",
            "saturated",
            "hostile_good_failures",
            "hostile_not_4xx",
        },
    ),
    "orchestration": (
        ["--rounds", "1", "--trials", "1", "--command-repeats", "1"],
        True,
        {
            "prefect_over_plain",
            "plain_s",
            "prefect_s",
            "cold_start_s",
            "trials",
            "rounds",
            "command_cold_over_plain_s",
            "command_warm_over_plain_s",
        },
    ),
    "llm_server": (
        ["--repeats", "2", "--clients", "2", "--rounds", "1"],
        False,
        {"server_over_inprocess", "server_over_transformers_generate", "served_request_ms", "same_text"},
    ),
    "first_use": (["--no-demo", "--repeats", "1"], False, {"up_memory", "python_start_s"}),
    "pretraining": (
        ["--steps", "2", "--packages", "click", "--repeats", "1"],
        False,
        {
            "device",
            "tokens_per_s",
            "baseline_tokens_per_s",
            "speedup_over_baseline",
            "tokenize_parallel_speedup",
        },
    ),
    "finetuning": (
        ["--steps", "2", "--hidden", "64", "--layers", "2"],
        False,
        {"trainable_fraction", "peak_memory_ratio", "rss_ratio", "step_time_ratio", "lora_val_loss"},
    ),
    "rag": (
        [
            *(
                "--docs",
                "12",
                "--naive-docs",
                "3",
                "--vectors",
                "2000",
                "--queries",
                "10",
                "--embed-chunks",
                "16",
            ),
            *("--held-out-docs", "4", "--ask-questions", "5", "--ask-slow-questions", "1"),
        ],
        False,
        {
            *("ingest_speedup", "store_speedup", "rerefresh_fraction", "first_refresh_s", "rerefresh_s"),
            *("test_ensemble_mrr_at_10", "embed_mean_cosine", "torch_test_vector_hit_at_5"),
            *("first_refresh_over_langchain", "rerefresh_over_langchain_index", "langchain_over_embed_floor"),
        },
    ),
    "install_size": (
        ["--top", "3"],
        False,
        {"default_mb", "all_extras_mb", "default_over_all", "llm_adds_mb", "dask_adds_mb", "torch_build"},
    ),
    "webhooks": (
        ["--rounds", "1", "--burst", "10", "--window", "2"],
        False,
        {
            "delivery_to_searchable_s",
            "burst_runs",
            "burst_deliveries",
            "webhook_over_schedule",
            "runs_over_one_per_delivery",
        },
    ),
    "deploy": (
        ["--rounds", "1"],
        False,
        {
            "event_to_run_s",
            "direct_to_run_best_s",
            "event_over_direct",
            "up_ready_s",
            "up_over_plain_prefect",
        },
    ),
}


def test_every_documented_figure_names_a_benchmark_and_a_key_its_script_writes() -> None:
    """Static, so a script that stops writing a documented key fails here, before any run."""
    for row in results.ROWS:
        script = PROJECT_ROOT / "benchmarks" / f"{row.script}.py"
        assert script.exists(), row.bench
        tree = ast.parse(script.read_text())
        literals = {
            n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
        # Keys made by f-strings (`f"rows_{label}_s"`) match their shape.
        shapes = [
            re.compile(
                "".join(
                    re.escape(part.value) if isinstance(part, ast.Constant) else ".+" for part in node.values
                )
            )
            for node in ast.walk(tree)
            if isinstance(node, ast.JoinedStr)
        ]
        unwritten = {k for k in row.fields() if k not in literals and not any(s.fullmatch(k) for s in shapes)}
        assert not unwritten, (row.bench, sorted(unwritten))


def test_the_documented_tables_are_the_kept_results() -> None:
    """README.md and docs/benchmarks.md hold the table `python benchmarks/_results.py` makes from
    benchmarks/results/: each kept file has every key its row reads, and its provenance."""
    kept = results.load(results.DEFAULT_DIR)
    assert {row.bench for row in results.ROWS} <= set(kept), "a documented benchmark has no kept result"
    for row in results.ROWS:
        assert row.fields() <= set(kept[row.bench]), (row.bench, sorted(row.fields() - set(kept[row.bench])))
        assert {"commit", "machine", "date"} <= set(kept[row.bench]), row.bench
    for document in results.DOCUMENTS:
        text = document.read_text()
        assert results.rendered(text, kept) == text, (
            f"{document.name} is stale: run python benchmarks/_results.py"
        )


def test_a_table_row_reads_its_figures_from_the_result_it_names(tmp_path: Path) -> None:
    row = results.ROWS[0]
    fields = dict.fromkeys(row.fields(), 1.25)
    kept = {
        row.bench: {
            **fields,
            "commit": "abc1234def",
            "machine": {"cores": 2, "gpu": None},
            "date": "2026-12-04T01:00:00",
        }
    }
    table = results.table(kept)
    assert "abc1234" in table and "2026-12-04" in table and "2 cores" in table and "1.2" in table
    assert "not yet run" in table  # the benchmarks with no result say so, with no figure
    with pytest.raises(KeyError):
        results.table({row.bench: {"commit": None, "machine": {"cores": 2, "gpu": None}, "date": "x"}})


def test_every_benchmark_script_has_a_smoke_run() -> None:
    scripts = {p.stem for p in (PROJECT_ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_")}
    # rag_corpus is the RAG benchmark's corpus builder, run by benchmarks/rag.py itself.
    assert scripts - {"rag_corpus"} == set(SMOKE)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_the_benchmark_runs_at_smoke_size_and_ends_with_its_json_line(
    script: str, trained_home: Path, tmp_path: Path
) -> None:
    arguments, needs_trained_home, keys = SMOKE[script]
    home = copy_trained_home(trained_home, tmp_path / "home") if needs_trained_home else tmp_path / "home"
    # Its own TMPDIR, to see what it leaves there; short, as where XDG_RUNTIME_DIR is unset the
    # embedded Postgres' socket may go under it (platformdirs' runtime dir; 107 bytes at most).
    scratch = Path(tempfile.mkdtemp(prefix="b"))
    env = command_env(home) | {"MLSTACK_BENCH_RESULTS": str(tmp_path / "results"), "TMPDIR": str(scratch)}
    try:
        done = run([sys.executable, str(PROJECT_ROOT / "benchmarks" / f"{script}.py"), *arguments], env, 540)
        # Its own temporary folders (benchmarks/_common.py's scratch) went with it; libraries'
        # caches (torch's inductor, Prefect's runner storage) are theirs.
        left = [p.name for p in scratch.iterdir() if "mlstack-bench-" in p.name]
    finally:
        from mlstack.postgres import stop_embedded
        from mlstack.settings import Settings

        stop_embedded(Settings(home=home).pg_dir)
        shutil.rmtree(scratch, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert left == []
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == script
    wanted = keys | documented(script)
    assert wanted <= set(result), sorted(wanted - set(result))
    kept = json.loads((tmp_path / "results" / f"{script}.json").read_text())
    assert {k: kept[k] for k in result} == result  # kept as printed, with where it came from
    assert kept["commit"] and kept["machine"]["cores"] >= 1 and kept["date"]
    if script == "serving":  # behaviour, not timing: every good request answered, every bad one 4xx
        assert result["hostile_sent"] > 0 and result["hostile_good"] > 0
        assert (result["hostile_good_failures"], result["hostile_not_4xx"]) == (0, 0), result
