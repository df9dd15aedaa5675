"""Every script in benchmarks/ runs at a smoke size and ends with its JSON line, carrying the keys
its README row and its own table report. Nothing here times anything: a benchmark's figures are
its own business; this keeps the scripts from rotting between the runs that measure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, copy_trained_home
from tests.kill import command_env, run

pytestmark = pytest.mark.slow

# script: (smoke arguments, whether it needs a trained data dir, the keys its JSON line must carry)
SMOKE: dict[str, tuple[list[str], bool, set[str]]] = {
    "drift": (["--sizes", "2000"], False, {"columns", "rows_2k_s", "baseline_2k_s"}),
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
            "p50_ratio_vs_tight_loop",
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
        ["--repeats", "2"],
        False,
        {"server_over_inprocess", "server_over_transformers_generate", "served_request_ms", "same_text"},
    ),
    "pretraining": (
        ["--steps", "2", "--packages", "click"],
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
        ["--docs", "12", "--naive-docs", "3", "--vectors", "2000", "--queries", "10", "--embed-chunks", "16"],
        False,
        {"ingest_speedup", "store_speedup", "rerefresh_fraction", "first_refresh_s", "rerefresh_s"},
    ),
    "install_size": (
        ["--top", "3"],
        False,
        {"default_mb", "all_extras_mb", "default_over_all", "llm_adds_mb", "dask_adds_mb", "torch_build"},
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


def test_every_benchmark_script_has_a_smoke_run() -> None:
    scripts = {p.stem for p in (PROJECT_ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_")}
    # rag_corpus is the RAG benchmark's corpus builder, run by benchmarks/rag.py itself.
    assert scripts - {"rag_corpus"} == set(SMOKE)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_the_benchmark_runs_at_smoke_size_and_ends_with_its_json_line(
    script: str, trained_home: Path, tmp_path: Path
) -> None:
    arguments, needs_trained_home, keys = SMOKE[script]
    home = copy_trained_home(trained_home, tmp_path / "home") if needs_trained_home else tmp_path / "home"
    env = command_env(home)
    try:
        done = run([sys.executable, str(PROJECT_ROOT / "benchmarks" / f"{script}.py"), *arguments], env, 540)
    finally:
        from mlstack.postgres import stop_embedded
        from mlstack.settings import Settings

        stop_embedded(Settings(home=home).pg_dir)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == script
    assert keys <= set(result), sorted(keys - set(result))
    if script == "serving":  # behaviour, not timing: every good request answered, every bad one 4xx
        assert result["hostile_sent"] > 0 and result["hostile_good"] > 0
        assert (result["hostile_good_failures"], result["hostile_not_4xx"]) == (0, 0), result
